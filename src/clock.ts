/**
 * Time for the library. Nothing in `src/` reads the system time directly: the engine, the
 * dispatcher and the simulation all take a `Clock`, so a dry run is the same code on a manual one.
 *
 * @module
 */
import { DateTime } from 'luxon';

/** An instant as Tocsin stores it: ISO 8601 in UTC with milliseconds, so strings sort by time. */
export function toIsoUtc(instant: DateTime): string {
  return instant.toUTC().toISO() ?? '';
}

/** A handle returned by `Clock.setTimeout`. */
export type TimeoutHandle = unknown;

/** The current time and timers, injectable for tests and simulations. */
export interface Clock {
  now(): DateTime;
  setTimeout(callback: () => void, delayMs: number): TimeoutHandle;
  clearTimeout(handle: TimeoutHandle): void;
}

/** The real clock: wall time in UTC and Node's timers. */
export const systemClock: Clock = {
  now: () => DateTime.utc(),
  setTimeout: (callback, delayMs) => setTimeout(callback, Math.max(0, delayMs)),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

interface PendingTimeout {
  id: number;
  dueMs: number;
  callback: () => void;
}

/**
 * A clock that moves only when told to. `advanceTo` runs every timeout due on the way, in due
 * order, with `now()` set to each one's due time while it runs.
 */
export class ManualClock implements Clock {
  private nowMs: number;
  private nextId = 1;
  private pending: PendingTimeout[] = [];

  constructor(start: DateTime) {
    this.nowMs = start.toMillis();
  }

  now(): DateTime {
    return DateTime.fromMillis(this.nowMs, { zone: 'utc' });
  }

  setTimeout(callback: () => void, delayMs: number): TimeoutHandle {
    const id = this.nextId++;
    this.pending.push({ id, dueMs: this.nowMs + Math.max(0, delayMs), callback });
    return id;
  }

  clearTimeout(handle: TimeoutHandle): void {
    this.pending = this.pending.filter((timeout) => timeout.id !== handle);
  }

  /** The instant of the earliest pending timeout, if any. */
  nextDue(): DateTime | undefined {
    const next = this.earliest();
    return next && DateTime.fromMillis(next.dueMs, { zone: 'utc' });
  }

  advanceTo(target: DateTime): void {
    const targetMs = target.toMillis();
    for (let next = this.earliest(); next && next.dueMs <= targetMs; next = this.earliest()) {
      this.pending = this.pending.filter((timeout) => timeout !== next);
      this.nowMs = Math.max(this.nowMs, next.dueMs);
      next.callback();
    }
    this.nowMs = Math.max(this.nowMs, targetMs);
  }

  advanceBy(ms: number): void {
    this.advanceTo(DateTime.fromMillis(this.nowMs + ms, { zone: 'utc' }));
  }

  private earliest(): PendingTimeout | undefined {
    let best: PendingTimeout | undefined;
    for (const timeout of this.pending) {
      if (
        !best ||
        timeout.dueMs < best.dueMs ||
        (timeout.dueMs === best.dueMs && timeout.id < best.id)
      ) {
        best = timeout;
      }
    }
    return best;
  }
}
