import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';

/** The repository root, where `bin/tocsin.js` lives. */
export const ROOT = path.resolve(import.meta.dirname, '..', '..');

/** A `tocsin` child process and what it printed. */
export interface TocsinProcess {
  child: ChildProcessWithoutNullStreams;
  lines: string[];
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts `node bin/tocsin.js ...args` and waits for a stdout line matching `ready`. */
export async function startTocsin(
  args: string[],
  ready: RegExp,
  env: NodeJS.ProcessEnv = {},
): Promise<{ process: TocsinProcess; match: RegExpExecArray }> {
  const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'tocsin.js'), ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
  });
  const lines: string[] = [];
  createInterface({ input: child.stderr }).on('line', (line) => lines.push(line));

  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };

  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`tocsin ${args[0]} did not start:\n${lines.join('\n')}`)),
      15_000,
    );
    createInterface({ input: child.stdout }).on('line', (line) => {
      lines.push(line);
      const found = ready.exec(line);
      if (found) {
        clearTimeout(timer);
        resolve(found);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`tocsin ${args[0]} exited with ${code}:\n${lines.join('\n')}`));
    });
  });
  return { process: { child, lines, stop }, match };
}

/** What `tocsin sandbox` announces on start. */
export interface SandboxInfo {
  http: string;
  smtp: { host: string; port: number };
  twilio: { accountSid: string; authToken: string; from: string };
}

/** Starts the stand-ins as their own process; `args` adds flags such as `--faults 0.3`. */
export async function startSandboxProcess(args: readonly string[] = []): Promise<{
  process: TocsinProcess;
  info: SandboxInfo;
}> {
  const { process: child, match } = await startTocsin(
    ['sandbox', '--port', '0', ...args],
    /^(\{.*"http".*\})$/,
  );
  return { process: child, info: JSON.parse(match[1] ?? '{}') as SandboxInfo };
}

/** A message as the stand-ins recorded it (`GET /sandbox/messages`). */
export interface ReceivedMessage {
  channel: string;
  to: string;
  subject: string | null;
  body: string;
  receivedAt: string;
}

/** Everything the stand-ins have received so far. */
export async function listReceived(sandbox: SandboxInfo): Promise<ReceivedMessage[]> {
  const response = await fetch(`${sandbox.http}/sandbox/messages`);
  return ((await response.json()) as { messages: ReceivedMessage[] }).messages;
}

/** Writes a service config that sends to the stand-ins, in a fresh temporary folder. */
export function writeServeConfig(
  sandbox: SandboxInfo,
  playbook: string,
  extraLines: readonly string[] = [],
  directory = 'examples/directory.yaml',
): { dir: string; config: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'tocsin-e2e-'));
  const config = path.join(dir, 'tocsin.yaml');
  writeFileSync(
    config,
    [
      'apiVersion: tocsin/v1',
      'kind: Config',
      'database: ./tocsin.db',
      `playbooks: [${JSON.stringify(path.resolve(ROOT, playbook))}]`,
      `directory: ${JSON.stringify(path.resolve(ROOT, directory))}`,
      'server: { host: 127.0.0.1, port: 0, token: { env: TOCSIN_TOKEN } }',
      'channels:',
      '  sms:',
      '    provider: twilio',
      `    baseUrl: ${sandbox.http}`,
      `    accountSid: ${sandbox.twilio.accountSid}`,
      '    authToken: { env: TWILIO_AUTH_TOKEN }',
      `    from: '${sandbox.twilio.from}'`,
      '  email:',
      '    provider: smtp',
      `    host: ${sandbox.smtp.host}`,
      `    port: ${sandbox.smtp.port}`,
      "    from: 'Tocsin <tocsin@example.com>'",
      ...extraLines,
      '',
    ].join('\n'),
  );
  return { dir, config };
}

/** Starts `tocsin serve` with a config; resolves with its base URL once it listens. */
export async function startServe(
  config: string,
  env: NodeJS.ProcessEnv,
): Promise<{ process: TocsinProcess; url: string }> {
  const { process: child, match } = await startTocsin(
    ['serve', '--config', config],
    /tocsin listening on (http:\/\/\S+)/,
    env,
  );
  return { process: child, url: match[1] ?? '' };
}

/** Polls `check` until it returns a value, or fails after `timeoutMs`. */
export async function waitFor<T>(
  check: () => Promise<T | undefined>,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
