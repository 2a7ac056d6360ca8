import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

/** A name for this process in the writer lease: machine, pid, a random tag, and what it is. */
export function leaseHolder(kind: 'serve' | 'cli' = 'serve'): string {
  return `${hostname()}/${process.pid}/${randomBytes(3).toString('hex')}/${kind}`;
}

/** Whether the holder is a short CLI command rather than a service. */
export function isCliHolder(holder: string): boolean {
  return holder.endsWith('/cli');
}

/**
 * Whether a lease holder was a process on this machine that no longer runs, so its lease need
 * not run out before another process takes over (a restart after a crash resumes at once).
 * A holder on another machine, or a pid that runs (even if reused), counts as alive.
 */
export function isDeadHere(holder: string): boolean {
  const [host, pidText] = holder.split('/');
  const pid = Number(pidText);
  if (host !== hostname() || !Number.isInteger(pid) || pid <= 0 || pid === process.pid) {
    return false;
  }
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
