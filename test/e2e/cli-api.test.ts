import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { ReceivedMessage, SandboxInfo, TocsinProcess } from './processes.js';
import {
  listReceived,
  ROOT,
  startSandboxProcess,
  startServe,
  waitFor,
  writeServeConfig,
} from './processes.js';

const TOKEN = 'cli-api-token-77';
const run = promisify(execFile);

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `tocsin ...args --url url` with the token; a failed exit is returned, not thrown. */
async function runCli(url: string, args: readonly string[]): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(
      process.execPath,
      [path.join(ROOT, 'bin/tocsin.js'), ...args, '--url', url],
      { cwd: ROOT, env: { ...process.env, TOCSIN_TOKEN: TOKEN } },
    );
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as CliResult;
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe('tocsin trigger, status and ack against a running service', () => {
  let sandbox: { process: TocsinProcess; info: SandboxInfo };
  let serve: { process: TocsinProcess; url: string };
  let dir: string;
  let declaredId: string | undefined;

  beforeAll(async () => {
    sandbox = await startSandboxProcess();
    const written = writeServeConfig(sandbox.info, 'playbooks/data-breach.yaml');
    dir = written.dir;
    serve = await startServe(written.config, {
      TOCSIN_TOKEN: TOKEN,
      TWILIO_AUTH_TOKEN: 'sandbox-auth-token',
    });
  });

  afterAll(async () => {
    await serve?.process.stop();
    await sandbox?.process.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const tocsin = (...args: string[]): Promise<CliResult> => runCli(serve.url, args);

  it('declares an incident by hand, lists it, and acknowledges it', async () => {
    const declared = await tocsin(
      'trigger',
      'data-breach',
      '--by',
      'frieda',
      '--var',
      'system=file server FS-03',
      '--var',
      'details=ransom note on FS-03',
    );
    expect(declared.code).toBe(0);
    const incident = JSON.parse(declared.stdout) as { id: string; createdBy: string };
    expect(incident.createdBy).toBe('frieda');
    declaredId = incident.id;

    await waitFor(
      async () =>
        (await listReceived(sandbox.info)).some((m) => m.body.includes('FS-03')) ? true : undefined,
      5_000,
      'the first messages',
    );
    const status = JSON.parse((await tocsin('status')).stdout) as { incidents: { id: string }[] };
    expect(status.incidents.map((entry) => entry.id)).toContain(incident.id);

    const acked = await tocsin('ack', incident.id, '--by', 'ada');
    expect(acked.code).toBe(0);
    expect((JSON.parse(acked.stdout) as { acknowledged: boolean }).acknowledged).toBe(true);

    const resolved = await tocsin('resolve', incident.id, '--by', 'frieda');
    expect((JSON.parse(resolved.stdout) as { status: string }).status).toBe('resolved');
    // The all-clear is decided at once; quiet hours may hold its delivery, so ask the service.
    const shown = JSON.parse((await tocsin('status', incident.id)).stdout) as {
      messages: { stageId: string }[];
    };
    expect(
      shown.messages.filter((message) => message.stageId === 'all-clear').length,
    ).toBeGreaterThan(0);
  });

  it('exports the audit log with every message and its outcome, through the API and from the file', async () => {
    const id = declaredId ?? '';
    type Audit = {
      events: { type: string; data: { messageId?: number; status?: string } }[];
      messages: { id: number; status: string; personId: string; channel: string }[];
    };
    // Wait until the dispatcher has an outcome for every message it may send now.
    const settled = await waitFor(
      async () => {
        const audit = JSON.parse((await tocsin('audit', id)).stdout) as Audit;
        return audit.messages.every((message) => message.status !== 'sending') ? audit : undefined;
      },
      5_000,
      'outcomes for the messages',
    );

    expect(settled.messages.length).toBeGreaterThan(3);
    const decided = settled.events.filter((event) => event.type === 'message.decided');
    expect(decided.map((event) => event.data.messageId).sort()).toEqual(
      settled.messages.map((message) => message.id).sort(),
    );
    for (const message of settled.messages.filter((m) => m.status === 'accepted')) {
      const outcomes = settled.events.filter(
        (event) => event.type === 'message.outcome' && event.data.messageId === message.id,
      );
      expect(outcomes.at(-1)?.data.status).toBe('accepted');
    }
    expect(settled.events.map((event) => event.type)).toEqual(
      expect.arrayContaining(['incident.started', 'stage.fired', 'ack.received', 'alert.resolved']),
    );

    const fromFile = await tocsin('audit', id, '--db', path.join(dir, 'tocsin.db'));
    const fileAudit = JSON.parse(fromFile.stdout) as Audit;
    expect(fileAudit.messages.map((message) => message.id)).toEqual(
      settled.messages.map((message) => message.id),
    );

    const csv = await tocsin('audit', id, '--format', 'csv');
    const lines = csv.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe(
      'seq,at,actor,type,stage,occurrence,person,channel,message,status,detail',
    );
    const finals = lines.filter((line) => line.includes(',message.final,'));
    expect(finals).toHaveLength(settled.messages.length);
    // People appear by directory id: no phone number or address of the example directory.
    expect(csv.stdout).not.toMatch(/\+1202555|[a-z]+\.[a-z]+@example\.com/);

    const missing = await tocsin('audit', 'inc_nope');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('answered 404');
  });

  it('reports a refusal by the service with its reason and exit code 1', async () => {
    const refused = await tocsin(
      'trigger',
      'data-breach',
      '--by',
      'kim',
      '--var',
      'system=x',
      '--var',
      'details=y',
    );

    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('answered 403');
    expect(refused.stderr).toContain('may not start "data-breach"');
  });
});

describe('tocsin approve and cancel against a running service', () => {
  let sandbox: { process: TocsinProcess; info: SandboxInfo };
  let serve: { process: TocsinProcess; url: string };
  let dir: string;

  beforeAll(async () => {
    sandbox = await startSandboxProcess();
    const written = writeServeConfig(sandbox.info, 'test/fixtures/playbooks/e2e-approval.yaml');
    dir = written.dir;
    serve = await startServe(written.config, {
      TOCSIN_TOKEN: TOKEN,
      TWILIO_AUTH_TOKEN: 'sandbox-auth-token',
    });
  });

  afterAll(async () => {
    await serve?.process.stop();
    await sandbox?.process.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const tocsin = (...args: string[]): Promise<CliResult> => runCli(serve.url, args);

  interface View {
    status: string;
    firedStages: { stageId: string }[];
    pendingStages: unknown[];
    awaitingApproval: { stageId: string; approvedBy: string[] }[];
    messages?: { stageId: string; personId: string; status: string }[];
  }

  async function declare(by: string): Promise<string> {
    const declared = await tocsin('trigger', 'e2e-approval', '--by', by, '--var', 'system=FS-07');
    expect(declared.code).toBe(0);
    return (JSON.parse(declared.stdout) as { id: string }).id;
  }

  async function show(id: string): Promise<View> {
    return JSON.parse((await tocsin('status', id)).stdout) as View;
  }

  /** What the stand-ins received about one incident whose subject or text starts with `prefix`. */
  async function received(id: string, prefix: RegExp): Promise<ReceivedMessage[]> {
    return (await listReceived(sandbox.info)).filter(
      (m) => m.body.includes(id) && prefix.test(m.subject ?? m.body),
    );
  }

  it('releases a gated stage once legal and communications approve, and refuses its author', async () => {
    const id = await declare('frieda');
    const byHana = await declare('hana');

    const asked = await show(id);
    expect(asked.awaitingApproval).toMatchObject([{ stageId: 'customer-notice', approvedBy: [] }]);
    expect(
      asked.messages
        ?.filter((message) => message.stageId === 'approval:customer-notice')
        .map((message) => message.personId)
        .sort(),
    ).toEqual(['hana', 'ilse']);

    const first = await tocsin('approve', id, 'customer-notice', '--by', 'ilse');
    expect(first.code).toBe(0);
    const half = JSON.parse(first.stdout) as View;
    expect(half.awaitingApproval).toMatchObject([
      { stageId: 'customer-notice', approvedBy: ['ilse'] },
    ]);
    expect(half.firedStages.map((stage) => stage.stageId)).not.toContain('customer-notice');

    // Hana declared the second incident: her approval of it does not count, though she has the role.
    const ownRefused = await tocsin('approve', byHana, 'customer-notice', '--by', 'hana');
    expect(ownRefused.code).toBe(1);
    expect(ownRefused.stderr).toContain('answered 403');
    expect(ownRefused.stderr).toContain('the author of an incident may not approve');
    expect((await show(byHana)).awaitingApproval).toMatchObject([
      { stageId: 'customer-notice', approvedBy: [] },
    ]);

    const second = await tocsin('approve', id, 'customer-notice', '--by', 'hana');
    expect(second.code).toBe(0);
    const approved = JSON.parse(second.stdout) as View;
    expect(approved.awaitingApproval).toEqual([]);
    expect(approved.firedStages.map((stage) => stage.stageId)).toContain('customer-notice');

    // Both key customers hear, once each.
    await waitFor(
      async () => ((await received(id, /^Information/)).length >= 2 ? true : undefined),
      5_000,
      'the customer notice',
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    const notices = await received(id, /^Information/);
    expect(notices.map((message) => message.to).sort()).toEqual([
      'jonas.vogel@example.com',
      'kim.lee@example.com',
    ]);

    const again = await tocsin('approve', id, 'customer-notice', '--by', 'ilse');
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('nothing is waiting for approval');
  });

  it('cancels an incident: the waiting approval is dropped and the retraction goes to the crisis team', async () => {
    const id = await declare('frieda');

    const cancelled = await tocsin('cancel', id, '--by', 'frieda');

    expect(cancelled.code).toBe(0);
    const view = JSON.parse(cancelled.stdout) as View;
    expect(view.status).toBe('cancelled');
    expect(view.awaitingApproval).toEqual([]);
    expect(view.pendingStages).toEqual([]);
    expect(view.firedStages.map((stage) => stage.stageId)).toContain('retraction');
    const retraction = (await show(id)).messages?.filter((m) => m.stageId === 'retraction');
    expect(retraction?.map((message) => message.personId).sort()).toEqual([
      'frieda',
      'hana',
      'ilse',
    ]);
    await waitFor(
      async () => ((await received(id, /^(Cancelled|Abgesagt)/)).length >= 3 ? true : undefined),
      5_000,
      'the retraction',
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await received(id, /^(Cancelled|Abgesagt)/)).toHaveLength(3);

    const audit = JSON.parse((await tocsin('audit', id)).stdout) as {
      events: { type: string; actor: string; data: { stageId?: string; reason?: string } }[];
    };
    expect(audit.events).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: 'incident.cancelled', actor: 'frieda' }),
        expect.objectContaining({
          type: 'stage.skipped',
          data: { stageId: 'customer-notice', reason: 'cancelled' },
        }),
      ]),
    );

    const twice = await tocsin('cancel', id, '--by', 'frieda');
    expect(twice.code).toBe(1);
    expect(twice.stderr).toContain('answered 409');
    const late = await tocsin('approve', id, 'customer-notice', '--by', 'ilse');
    expect(late.code).toBe(1);
    expect(late.stderr).toContain('is cancelled');
  });
});
