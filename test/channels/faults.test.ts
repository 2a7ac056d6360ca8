/**
 * Issue 5, must show 3: the SMS stand-in, in its own process, fails 30% of sends with a mix of
 * throttles (429 with Retry-After), 500s, 503s, calls held past the client's timeout and
 * connection resets — half of those after it took the message, so that the answer is lost —
 * and slow answers; a tenth of its delivery receipts come late, say undelivered, or never come.
 * A 1,000-recipient stage must end with every message delivered or failed with a reason (a
 * receipt that never came is a reason), none sent twice, and every such SMS followed by a
 * recorded fallback to email.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { IncidentStore } from '../../src/index.js';
import type { AuditRecord, OutboxRecord } from '../../src/index.js';
import type { SandboxInfo, TocsinProcess } from '../e2e/processes.js';
import {
  listReceived,
  startSandboxProcess,
  startServe,
  waitFor,
  writeServeConfig,
} from '../e2e/processes.js';

const RECIPIENTS = 1_000;
const TOKEN = 'faults-token-41c7';
const ENV = { TOCSIN_TOKEN: TOKEN, TWILIO_AUTH_TOKEN: 'sandbox-auth-token' };
// Twilio's test numbers: invalid (21211) and unsubscribed (21610), refused at once for good.
const REFUSED = { 7: '+15005550001', 500: '+15005550004' } as Record<number, string>;

const PLAYBOOK = `apiVersion: tocsin/v1
kind: Playbook
metadata: { name: bad-day, version: 1 }
triggers: [{ source: manual }]
audiences:
  staff: { select: { roles: [staff] }, channels: [sms, email] }
stages:
  - { id: page, after: 0m, receiptTimeout: 5s, audiences: [staff] }
messages:
  page:
    staff:
      sms: '{{ recipient.id }} page {{ incident.id }}'
      email: { subject: Page, text: '{{ recipient.id }} page {{ incident.id }}' }
`;

describe('a 1,000-recipient stage against a provider failing 30% of calls', () => {
  const cleanup: (() => Promise<void> | void)[] = [];

  afterAll(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  it('ends with every message delivered or failed with a reason, none twice, each fallback recorded', async () => {
    const sandbox = await startSandboxProcess([
      '--faults',
      '0.3',
      '--receipt-faults',
      '0.1',
      '--fault-seed',
      '5',
    ]);
    cleanup.push(() => sandbox.process.stop());
    const dir = mkdtempSync(path.join(tmpdir(), 'tocsin-faults-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(path.join(dir, 'bad-day.yaml'), PLAYBOOK);
    writeFileSync(path.join(dir, 'directory.yaml'), directory());
    const { config, dir: configDir } = writeServeConfig(
      sandbox.info,
      path.join(dir, 'bad-day.yaml'),
      [
        'dispatch: { concurrency: 16, sendTimeout: 1s, firstRetryAfter: 200ms, reconcileAfter: 300ms }',
      ],
      path.join(dir, 'directory.yaml'),
    );
    cleanup.push(() => rmSync(configDir, { recursive: true, force: true }));
    const serve = await startServe(config, ENV);
    cleanup.push(() => serve.process.stop());

    const incidentId = await declare(serve.url);
    await waitFor(
      async () => ((await isSettled(serve.url, incidentId)) ? true : undefined),
      60_000,
      'every message to be delivered or failed',
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}; last seen: ${lastState}`);
    });
    const { rows, audit } = readIncident(path.join(configDir, 'tocsin.db'), incidentId);
    // The SMS the stand-in took (the emails of the fallbacks carry the same text).
    const received = (await listReceived(sandbox.info)).filter(
      (message) => message.channel === 'sms' && message.body.endsWith(incidentId),
    );
    const faults = await readFaults(sandbox.info);
    report(rows, audit, faults, serve.process);

    // The stand-in really misbehaved, in every way it can.
    const sent = faults.sends.twilio;
    const faulted = Object.entries(sent).filter(([kind]) => kind !== 'passed');
    const faultCount = faulted.reduce((sum, [, count]) => sum + count, 0);
    expect(faultCount / (faultCount + (sent.passed ?? 0))).toBeGreaterThan(0.2);
    for (const [kind, count] of faulted) expect(count, kind).toBeGreaterThan(0);

    // Every SMS ended delivered, failed with a reason, or taken with its receipt overdue;
    // nothing is left open or unknown.
    const sms = rows.filter((row) => row.channel === 'sms');
    expect(sms).toHaveLength(RECIPIENTS);
    const unsettled = sms.filter((row) => !isSettledSms(row));
    expect(unsettled.map((row) => `${row.personId}:${row.status}`)).toEqual([]);
    for (const row of sms.filter((candidate) => candidate.status === 'failed')) {
      expect(row.errorCode, row.personId).toMatch(/^(\d+|E_[A-Z_]+)$/);
      expect(row.errorMessage, row.personId).toBeTruthy();
    }
    expect(sms.find((row) => row.personId === 'p0007')?.errorCode).toBe('21211');
    expect(sms.find((row) => row.personId === 'p0500')?.errorCode).toBe('21610');

    // None sent twice: each body reached the stand-in at most once, and each delivered SMS is
    // exactly the one the stand-in holds under its sid.
    const seen = new Map<string, number>();
    for (const message of received) seen.set(message.body, (seen.get(message.body) ?? 0) + 1);
    expect([...seen.entries()].filter(([, count]) => count > 1)).toEqual([]);
    const sids = new Set(
      received.map((message) => (message as { providerId?: string }).providerId),
    );
    const taken = sms.filter((row) => row.providerId !== null);
    expect(taken.filter((row) => !sids.has(row.providerId ?? ''))).toEqual([]);
    expect(received.filter((message) => message.channel === 'sms')).toHaveLength(taken.length);

    // Every SMS that failed for good, or whose receipt never came, has its fallback recorded,
    // and the email it led to.
    expect(faults.receipts.lost).toBeGreaterThan(0);
    const overdue = sms.filter((row) => row.errorCode === 'E_CHANNEL_RECEIPT_OVERDUE');
    expect(overdue.length).toBeGreaterThanOrEqual(faults.receipts.lost ?? 0);
    expect(sms.filter((row) => row.errorCode === '30003').length).toBeGreaterThan(0);
    const failed = sms.filter((row) => row.status === 'failed' || row.status === 'accepted');
    const fallbacks = new Map(
      audit
        .filter((entry) => entry.type === 'message.fallback')
        .map((entry) => [Number(entry.data.messageId), entry]),
    );
    for (const row of failed) {
      expect(fallbacks.get(row.id)?.data.to, row.personId).toBe('email');
      const email = rows.find(
        (other) => other.personId === row.personId && other.channel === 'email',
      );
      expect(email?.status, row.personId).toBe('accepted');
    }
    expect(rows.filter((row) => row.channel === 'email')).toHaveLength(failed.length);
  }, 300_000);
});

function directory(): string {
  const lines = ['apiVersion: tocsin/v1', 'kind: Directory', 'people:'];
  for (let index = 0; index < RECIPIENTS; index++) {
    const id = `p${String(index).padStart(4, '0')}`;
    const phone = REFUSED[index] ?? `+4915${String(10_000_000 + index)}`;
    lines.push(
      `  - { id: ${id}, name: Person ${index}, phone: '${phone}', email: ${id}@example.com, roles: [staff] }`,
    );
  }
  return `${lines.join('\n')}\n`;
}

async function declare(url: string): Promise<string> {
  const response = await fetch(`${url}/api/incidents`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ playbook: 'bad-day', by: 'p0001', variables: {} }),
  });
  const body = (await response.json()) as { id?: string };
  if (!body.id) throw new Error(`no incident started: ${JSON.stringify(body)}`);
  return body.id;
}

type MessageState = Pick<OutboxRecord, 'channel' | 'status' | 'errorCode'>;

function isSettledSms(message: MessageState): boolean {
  return (
    ['delivered', 'failed', 'unknown'].includes(message.status) ||
    (message.status === 'accepted' && message.errorCode === 'E_CHANNEL_RECEIPT_OVERDUE')
  );
}

let lastState = '';

// Settled: no SMS waits to be sent or for its receipt, and every fallback email went out.
async function isSettled(url: string, id: string): Promise<boolean> {
  const response = await fetch(`${url}/api/incidents/${id}`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  const view = (await response.json()) as { messages?: MessageState[] };
  const messages = view.messages ?? [];
  const sms = messages.filter((message) => message.channel === 'sms');
  const open = messages.filter((message) =>
    message.channel === 'sms'
      ? !isSettledSms(message)
      : ['decided', 'sending'].includes(message.status),
  );
  const fellBack = sms.filter((message) => message.status !== 'delivered').length;
  const emails = messages.length - sms.length;
  lastState = JSON.stringify({ sms: sms.length, open: open.slice(0, 5), emails, fellBack });
  return sms.length === RECIPIENTS && open.length === 0 && emails === fellBack;
}

function readIncident(
  database: string,
  incidentId: string,
): { rows: OutboxRecord[]; audit: AuditRecord[] } {
  const store = new IncidentStore(database, { readonly: true });
  try {
    return { rows: store.listMessages(incidentId), audit: store.listAudit(incidentId) };
  } finally {
    store.close();
  }
}

interface FaultReport {
  sends: { twilio: Record<string, number> };
  receipts: Record<string, number>;
}

async function readFaults(sandbox: SandboxInfo): Promise<FaultReport> {
  const response = await fetch(`${sandbox.http}/sandbox/faults`);
  return (await response.json()) as FaultReport;
}

function report(
  rows: OutboxRecord[],
  audit: AuditRecord[],
  faults: FaultReport,
  serve: TocsinProcess,
): void {
  const byStatus: Record<string, number> = {};
  for (const row of rows) {
    const key = `${row.channel}:${row.status}`;
    byStatus[key] = (byStatus[key] ?? 0) + 1;
  }
  const reconciled = audit.filter(
    (entry) => entry.type === 'message.outcome' && entry.data.reconciled === true,
  ).length;
  const retries = audit.filter(
    (entry) => entry.type === 'message.outcome' && entry.data.status === 'decided',
  ).length;
  const logLines = serve.lines.length;
  console.log(
    `faults: ${JSON.stringify({ byStatus, retries, reconciled, faults: faults.sends.twilio, logLines })}`,
  );
}
