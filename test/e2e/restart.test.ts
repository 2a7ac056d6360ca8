import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import type { ReceivedMessage, SandboxInfo, TocsinProcess } from './processes.js';
import {
  listReceived,
  ROOT,
  startSandboxProcess,
  startServe,
  waitFor,
  writeServeConfig,
} from './processes.js';

const TOKEN = 'restart-token-51aa';
const ENV = { TOCSIN_TOKEN: TOKEN, TWILIO_AUTH_TOKEN: 'sandbox-auth-token' };
const ESCALATION_MS = 3_000;
const firing = readFileSync(
  path.join(ROOT, 'test/fixtures/webhooks/alertmanager-firing.json'),
  'utf8',
);

describe('tocsin serve after SIGKILL', () => {
  const cleanups: (() => Promise<void>)[] = [];

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function setUp(): Promise<{ sandbox: SandboxInfo; config: string }> {
    const sandbox = await startSandboxProcess();
    cleanups.push(() => sandbox.process.stop());
    const { dir, config } = writeServeConfig(
      sandbox.info,
      'test/fixtures/playbooks/e2e-escalation.yaml',
    );
    cleanups.push(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
    return { sandbox: sandbox.info, config };
  }

  async function serve(config: string): Promise<{ process: TocsinProcess; url: string }> {
    const started = await startServe(config, ENV);
    cleanups.push(() => started.process.stop());
    return started;
  }

  it('fires the escalation once, on time, after a kill while waiting for it', async () => {
    const { sandbox, config } = await setUp();
    const first = await serve(config);

    // Start the incident and wait for the first stage to reach the stand-in.
    const incidentId = await trigger(first.url);
    const startedAt = await incidentStart(first.url, incidentId);
    await waitFor(
      async () => ((await about(sandbox, incidentId)).length === 2 ? true : undefined),
      5_000,
      'first stage',
    );
    await waitFor(
      async () => ((await accepted(first.url, incidentId)) === 2 ? true : undefined),
      5_000,
      'outcomes',
    );

    // Kill it without warning while the escalation timer is pending, and start it again.
    await first.process.stop('SIGKILL');
    expect(first.process.child.signalCode).toBe('SIGKILL');
    const second = await serve(config);

    // The escalation comes once per recipient, not before it is due and promptly after.
    const escalations = await waitFor(
      async () => {
        const found = (await about(sandbox, incidentId)).filter((m) =>
          m.subject?.startsWith('Unacknowledged'),
        );
        return found.length >= 2 ? found : undefined;
      },
      ESCALATION_MS + 5_000,
      'escalation after restart',
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    const all = await about(sandbox, incidentId);
    const dueAt = startedAt + ESCALATION_MS;
    for (const message of escalations) {
      expect(Date.parse(message.receivedAt)).toBeGreaterThanOrEqual(dueAt);
      expect(Date.parse(message.receivedAt)).toBeLessThan(dueAt + 2_000);
    }
    expect(all.filter((m) => m.subject?.startsWith('Unacknowledged'))).toHaveLength(2);
    expect(all.filter((m) => m.body.startsWith('[CRITICAL]'))).toHaveLength(2);
    const view = (await (await api(second.url, `/api/incidents/${incidentId}`)).json()) as {
      pendingStages: unknown[];
      messages: { status: string }[];
    };
    expect(view.pendingStages).toEqual([]);
    expect(view.messages.map((m) => m.status)).toEqual([
      'accepted',
      'accepted',
      'accepted',
      'accepted',
    ]);
  });

  it('stops a second service that cannot have the port before it resumes any incident', async () => {
    const { config } = await setUp();
    const first = await serve(config);
    const port = new URL(first.url).port;

    const second = await runToExit(['serve', '--config', config, '--port', port]);

    expect(second.code).toBe(1);
    expect(second.output).toContain('E_SERVER_LISTEN');
    expect(second.output).not.toContain('incidents restored');
  });

  it('fires an overdue escalation once at start when the process was down past its deadline', async () => {
    const { sandbox, config } = await setUp();
    const first = await serve(config);
    const incidentId = await trigger(first.url);
    await waitFor(
      async () => ((await about(sandbox, incidentId)).length === 2 ? true : undefined),
      5_000,
      'first stage',
    );

    await first.process.stop('SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, ESCALATION_MS + 200));
    await serve(config);

    await waitFor(
      async () => ((await about(sandbox, incidentId)).length === 4 ? true : undefined),
      5_000,
      'overdue escalation',
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    const all = await about(sandbox, incidentId);
    expect(all.filter((m) => m.subject?.startsWith('Unacknowledged'))).toHaveLength(2);
    expect(all).toHaveLength(4);
  });
});

describe('tocsin CLI on the database while the service is down', () => {
  const cleanups: (() => Promise<void>)[] = [];

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  /** A service with the stand-ins and an incident whose first stage went out. */
  async function startIncident(): Promise<{
    sandbox: { process: TocsinProcess; info: SandboxInfo };
    config: string;
    db: string;
    first: { process: TocsinProcess; url: string };
    incidentId: string;
  }> {
    const sandbox = await startSandboxProcess();
    cleanups.push(() => sandbox.process.stop());
    const { dir, config } = writeServeConfig(
      sandbox.info,
      'test/fixtures/playbooks/e2e-escalation.yaml',
    );
    cleanups.push(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
    const first = await startServe(config, ENV);
    cleanups.push(() => first.process.stop());
    const incidentId = await trigger(first.url);
    await waitFor(
      async () => ((await about(sandbox.info, incidentId)).length === 2 ? true : undefined),
      5_000,
      'first stage',
    );
    return { sandbox, config, db: path.join(dir, 'tocsin.db'), first, incidentId };
  }

  it('records a resolution with --db, refused while the service runs, and the next serve sends it', async () => {
    const { sandbox, config, db, first, incidentId } = await startIncident();

    const refused = await runToExit(['resolve', incidentId, '--db', db, '--config', config]);
    expect(refused.code).toBe(2);
    expect(refused.output).toContain('is running on');

    await first.process.stop('SIGTERM');
    const resolved = await runToExit([
      'resolve',
      incidentId,
      '--by',
      'ada',
      '--db',
      db,
      '--config',
      config,
    ]);
    expect(resolved.code).toBe(0);
    const view = JSON.parse(resolved.output) as {
      status: string;
      messages: { stageId: string; status: string }[];
    };
    expect(view.status).toBe('resolved');
    const allClear = view.messages.filter((message) => message.stageId === 'all-clear');
    expect(allClear.length).toBeGreaterThan(0);
    expect(allClear.every((message) => message.status === 'decided')).toBe(true);
    const shown = await runToExit(['status', incidentId, '--db', db]);
    expect((JSON.parse(shown.output) as { status: string }).status).toBe('resolved');

    // Nothing went out while the service was down; the next one sends the all-clear, once.
    const before = (await about(sandbox.info, incidentId)).length;
    expect(before).toBe(2);
    const second = await startServe(config, ENV);
    cleanups.push(() => second.process.stop());
    await waitFor(
      async () =>
        (await about(sandbox.info, incidentId)).length === 2 + allClear.length ? true : undefined,
      5_000,
      'the all-clear from the next serve',
    );
  });

  it('lets an escalation that came due while the service was down go before a late --db acknowledgement', async () => {
    const { config, db, first, incidentId } = await startIncident();
    await first.process.stop('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, ESCALATION_MS + 200));

    const acked = await runToExit([
      'ack',
      incidentId,
      '--by',
      'ada',
      '--db',
      db,
      '--config',
      config,
    ]);

    expect(acked.code).toBe(0);
    const view = JSON.parse(acked.output) as { messages: { stageId: string }[] };
    expect(view.messages.filter((m) => m.stageId === 'escalate-management')).toHaveLength(2);
  });

  it('refuses --db on a file that is not a Tocsin database, without --config, or with --url', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tocsin-db-'));
    cleanups.push(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
    const notDb = path.join(dir, 'notes.db');
    writeFileSync(notDb, 'hello\n');
    const empty = path.join(dir, 'empty.db');
    writeFileSync(empty, '');
    const config = path.join(ROOT, 'test/fixtures/playbooks/valid-minimal.yaml');

    const status = await runToExit(['status', '--db', notDb]);
    const ack = await runToExit(['ack', 'inc_x', '--db', empty, '--config', config]);
    const noConfig = await runToExit(['ack', 'inc_x', '--db', empty]);
    const both = await runToExit(['ack', 'inc_x', '--db', empty, '--url', 'http://127.0.0.1:9']);

    expect(status.code).toBe(1);
    expect(status.output).toContain('is not a Tocsin database');
    expect(status.output).not.toContain('bug');
    expect(noConfig.code).toBe(2);
    expect(noConfig.output).toContain('give --config');
    expect(both.code).toBe(2);
    expect(ack.code).toBe(1);
    expect(readFileSync(empty, 'utf8')).toBe('');
  });
});

describe('tocsin trigger, approve and cancel with --db while the service is down', () => {
  const cleanups: (() => Promise<void>)[] = [];

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  interface View {
    id: string;
    status: string;
    createdBy: string;
    awaitingApproval: { stageId: string; approvedBy: string[] }[];
    messages: { stageId: string; personId: string; status: string }[];
  }

  /** Runs a command that must succeed and returns the incident view it printed. */
  async function act(args: string[]): Promise<View> {
    const result = await runToExit(args);
    expect(result.code, result.output).toBe(0);
    return JSON.parse(result.output) as View;
  }

  const stagesOf = (view: View): string[] =>
    [...new Set(view.messages.map((message) => message.stageId))].sort();

  it('declares, approves and cancels on the file, and the next serve sends what they decided, once', async () => {
    const sandbox = await startSandboxProcess();
    cleanups.push(() => sandbox.process.stop());
    const { dir, config } = writeServeConfig(
      sandbox.info,
      'test/fixtures/playbooks/e2e-approval.yaml',
    );
    cleanups.push(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
    const db = path.join(dir, 'tocsin.db');
    const first = await startServe(config, ENV);
    cleanups.push(() => first.process.stop());
    const onFile = ['--db', db, '--config', config];
    const declare = ['trigger', 'e2e-approval', '--by', 'frieda', '--var', 'system=FS-09'];

    const refused = await runToExit([...declare, ...onFile]);
    expect(refused.code).toBe(2);
    expect(refused.output).toContain('is running on');
    await first.process.stop('SIGTERM');

    // Declared on the file: the crisis team and the approvers are decided, nothing is sent.
    const declared = await act([...declare, ...onFile]);
    expect(declared.status).toBe('open');
    expect(declared.createdBy).toBe('frieda');
    expect(declared.awaitingApproval).toMatchObject([
      { stageId: 'customer-notice', approvedBy: [] },
    ]);
    expect(stagesOf(declared)).toEqual(['approval:customer-notice', 'convene-crisis-team']);
    expect(declared.messages.every((message) => message.status === 'decided')).toBe(true);

    // Two approvals, each in its own command, release the customer notice.
    const approve = ['approve', declared.id, 'customer-notice'];
    const half = await act([...approve, '--by', 'ilse', ...onFile]);
    expect(half.awaitingApproval).toMatchObject([
      { stageId: 'customer-notice', approvedBy: ['ilse'] },
    ]);
    expect(stagesOf(half)).not.toContain('customer-notice');
    const author = await runToExit([...approve, '--by', 'frieda', ...onFile]);
    expect(author.code).toBe(1);
    expect(author.output).toContain('the author of an incident may not approve');
    const approved = await act([...approve, '--by', 'hana', ...onFile]);
    expect(approved.awaitingApproval).toEqual([]);
    const notice = approved.messages.filter((message) => message.stageId === 'customer-notice');
    expect(notice.map((message) => `${message.personId}:${message.status}`).sort()).toEqual([
      'jonas:decided',
      'kim:decided',
    ]);

    // A second incident, cancelled on the file while its notice waits: the retraction is decided.
    const other = await act([...declare, ...onFile]);
    const cancelled = await act(['cancel', other.id, '--by', 'frieda', ...onFile]);
    expect(cancelled.status).toBe('cancelled');
    expect(cancelled.awaitingApproval).toEqual([]);
    const retraction = cancelled.messages.filter((message) => message.stageId === 'retraction');
    expect(retraction.map((message) => `${message.personId}:${message.status}`).sort()).toEqual([
      'frieda:decided',
      'hana:decided',
      'ilse:decided',
    ]);
    // Its approval requests had not gone out: they are withdrawn, not sent after the fact.
    const requests = cancelled.messages.filter((message) =>
      message.stageId.startsWith('approval:'),
    );
    expect(requests.length).toBeGreaterThan(0);
    expect(new Set(requests.map((message) => message.status))).toEqual(new Set(['failed']));
    const shown = await runToExit(['status', other.id, '--db', db]);
    expect((JSON.parse(shown.output) as View).status).toBe('cancelled');

    // Nothing went out while the service was down; the next one sends every decided row, once.
    expect(await about(sandbox.info, declared.id)).toEqual([]);
    expect(await about(sandbox.info, other.id)).toEqual([]);
    const second = await startServe(config, ENV);
    cleanups.push(() => second.process.stop());
    const expected = [
      { id: declared.id, count: approved.messages.length },
      {
        id: other.id,
        count: cancelled.messages.filter((message) => message.status === 'decided').length,
      },
    ];
    await waitFor(
      async () => {
        for (const { id, count } of expected) {
          if ((await about(sandbox.info, id)).length < count) return undefined;
        }
        return true;
      },
      5_000,
      'the decided messages from the next serve',
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    for (const { id, count } of expected) {
      expect(await about(sandbox.info, id)).toHaveLength(count);
    }
    const retracted = (await about(sandbox.info, other.id)).filter((message) =>
      /^(Cancelled|Abgesagt)/.test(message.subject ?? message.body),
    );
    expect(retracted).toHaveLength(3);
  });
});

async function runToExit(args: string[]): Promise<{ code: number | null; output: string }> {
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'tocsin.js'), ...args], {
    cwd: ROOT,
    env: { ...process.env, ...ENV },
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { code, output };
}

async function trigger(url: string): Promise<string> {
  const response = await fetch(`${url}/hooks/alertmanager`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: firing,
  });
  const body = (await response.json()) as { incidents: { incidentId: string }[] };
  return body.incidents[0]?.incidentId ?? '';
}

async function incidentStart(url: string, id: string): Promise<number> {
  const view = (await (await api(url, `/api/incidents/${id}`)).json()) as { startedAt: string };
  return Date.parse(view.startedAt);
}

async function accepted(url: string, id: string): Promise<number> {
  const view = (await (await api(url, `/api/incidents/${id}`)).json()) as {
    messageCounts: Record<string, number>;
  };
  return view.messageCounts.accepted ?? 0;
}

function api(url: string, route: string): Promise<Response> {
  return fetch(`${url}${route}`, { headers: { authorization: `Bearer ${TOKEN}` } });
}

async function about(sandbox: SandboxInfo, incidentId: string): Promise<ReceivedMessage[]> {
  return (await listReceived(sandbox)).filter((message) => message.body.includes(incidentId));
}
