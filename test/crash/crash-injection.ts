/**
 * Crash injection: an incident fans out to many recipients over two stages while `tocsin serve`
 * is killed with SIGKILL at seeded random moments and restarted each time, against the provider
 * stand-in running as its own process. What the database says afterwards is compared with what
 * the stand-in received.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { IncidentStore } from '../../src/index.js';
import type { OutboxRecord } from '../../src/index.js';
import type { TocsinProcess } from '../e2e/processes.js';
import {
  listReceived,
  ROOT,
  startSandboxProcess,
  startServe,
  waitFor,
  writeServeConfig,
} from '../e2e/processes.js';

export interface CrashOptions {
  recipients: number;
  kills: number;
  seed: number;
  /** Longest pause between a start and its kill; the pause is drawn uniformly below it. */
  maxLifeMs: number;
}

/** What one crash-injection run found; `problems` lists every broken promise. */
export interface CrashReport {
  seed: number;
  kills: number;
  recipients: number;
  decided: number;
  accepted: number;
  failed: number;
  unknown: number;
  unknownReceived: number;
  unknownNotReceived: number;
  reportedUnknown: number;
  received: number;
  duplicates: number;
  durationMs: number;
  problems: string[];
}

const TOKEN = 'crash-token-9d2e';
const ENV = { TOCSIN_TOKEN: TOKEN, TWILIO_AUTH_TOKEN: 'sandbox-auth-token' };
const STAGES = ['first-page', 'second-page'];

/** Runs the whole experiment and returns its counts. */
export async function runCrashInjection(options: CrashOptions): Promise<CrashReport> {
  const started = Date.now();
  const random = mulberry32(options.seed);
  const sandbox = await startSandboxProcess();
  const people = writeDirectory(options.recipients);
  const { dir, config } = writeServeConfig(
    sandbox.info,
    'test/fixtures/playbooks/crash-fan-out.yaml',
    // Few senders, so that the work spans many lives and kills land while messages are out.
    ['dispatch: { concurrency: 4 }', 'lease: { ttl: 2s }'],
    people,
  );
  const lives: TocsinProcess[] = [];
  let incidentId = '';
  try {
    let kills = 0;
    for (;;) {
      const serve = await startServe(config, ENV);
      lives.push(serve.process);
      if (!incidentId) incidentId = await trigger(serve.url);
      if (kills < options.kills) {
        await sleep(Math.floor(random() * options.maxLifeMs));
        await serve.process.stop('SIGKILL');
        kills++;
        continue;
      }
      await waitFor(
        async () =>
          (await isComplete(serve.url, incidentId, options.recipients)) ? true : undefined,
        120_000,
        'the incident to complete after the last restart',
      );
      await serve.process.stop('SIGTERM');
      break;
    }

    const rows = readMessages(path.join(dir, 'tocsin.db'), incidentId);
    const received = (await listReceived(sandbox.info)).filter((message) =>
      message.body.endsWith(incidentId),
    );
    const reportedUnknown = lives
      .flatMap((life) => life.lines)
      .map((line) => /"unknown":(\d+)/.exec(line)?.[1])
      .reduce((sum, count) => sum + Number(count ?? 0), 0);
    return {
      ...compare(rows, received, options),
      seed: options.seed,
      kills,
      reportedUnknown,
      durationMs: Date.now() - started,
    };
  } finally {
    for (const life of lives) await life.stop('SIGKILL');
    await sandbox.process.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(path.dirname(people), { recursive: true, force: true });
  }
}

function compare(
  rows: OutboxRecord[],
  received: { body: string; to: string }[],
  options: CrashOptions,
): Omit<CrashReport, 'seed' | 'kills' | 'reportedUnknown' | 'durationMs'> {
  const problems: string[] = [];
  const expected = options.recipients * STAGES.length;
  const byStatus = (status: string): OutboxRecord[] => rows.filter((row) => row.status === status);

  if (rows.length !== expected)
    problems.push(`${rows.length} messages decided, ${expected} expected`);
  const keys = new Set(rows.map((row) => `${row.personId} ${row.stageId}`));
  if (keys.size !== rows.length) problems.push('a message was decided twice');
  for (const status of ['decided', 'sending']) {
    const left = byStatus(status).length;
    if (left > 0) problems.push(`${left} messages left ${status}: lost`);
  }

  // Each body is "<person> <stage> <incident>": it names the message it belongs to.
  const counts = new Map<string, number>();
  let misaddressed = 0;
  for (const message of received) {
    const key = message.body.split(' ').slice(0, 2).join(' ');
    counts.set(key, (counts.get(key) ?? 0) + 1);
    if (message.to !== phoneOf(Number(key.slice(1, 5)))) misaddressed++;
  }
  if (misaddressed > 0) problems.push(`${misaddressed} messages went to another person's number`);
  const duplicates = [...counts.values()].filter((count) => count > 1).length;
  if (duplicates > 0) problems.push(`${duplicates} messages reached the stand-in more than once`);

  // Accepted by the stand-in; its receipts may have moved them on to delivered since.
  const accepted = rows.filter((row) => ['accepted', 'delivered', 'read'].includes(row.status));
  const missing = accepted.filter((row) => counts.get(`${row.personId} ${row.stageId}`) !== 1);
  if (missing.length > 0)
    problems.push(`${missing.length} accepted messages did not reach the stand-in exactly once`);
  const unknown = byStatus('unknown');
  const unknownReceived = unknown.filter((row) => counts.has(`${row.personId} ${row.stageId}`));
  const known = new Set([...accepted, ...unknown].map((row) => `${row.personId} ${row.stageId}`));
  const strays = [...counts.keys()].filter((key) => !known.has(key));
  if (strays.length > 0)
    problems.push(
      `${strays.length} messages reached the stand-in that are neither accepted nor unknown`,
    );

  return {
    recipients: options.recipients,
    decided: rows.length,
    accepted: accepted.length,
    failed: byStatus('failed').length,
    unknown: unknown.length,
    unknownReceived: unknownReceived.length,
    unknownNotReceived: unknown.length - unknownReceived.length,
    received: received.length,
    duplicates,
    problems,
  };
}

/** Person n's number, from the fictional 555-01xx block of 20 area codes. */
function phoneOf(index: number): string {
  return `+1${201 + Math.floor(index / 100)}5550${100 + (index % 100)}`;
}

/** People p0000, p0001, ... with the numbers of `phoneOf`. */
function writeDirectory(count: number): string {
  const lines = ['apiVersion: tocsin/v1', 'kind: Directory', 'people:'];
  for (let index = 0; index < count; index++) {
    const id = `p${String(index).padStart(4, '0')}`;
    lines.push(
      `  - { id: ${id}, name: Person ${index}, phone: '${phoneOf(index)}', roles: [staff] }`,
    );
  }
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'tocsin-crash-')), 'directory.yaml');
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

async function trigger(url: string): Promise<string> {
  const response = await fetch(`${url}/hooks/alertmanager`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: readFileSync(path.join(ROOT, 'test/fixtures/webhooks/alertmanager-firing.json'), 'utf8'),
  });
  const body = (await response.json()) as { incidents: { incidentId: string }[] };
  const id = body.incidents[0]?.incidentId;
  if (!id) throw new Error(`the trigger started no incident: ${JSON.stringify(body)}`);
  return id;
}

async function isComplete(url: string, id: string, recipients: number): Promise<boolean> {
  const response = await fetch(`${url}/api/incidents/${id}`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  const view = (await response.json()) as {
    pendingStages: unknown[];
    messageCounts: Record<string, number>;
  };
  const total = Object.values(view.messageCounts).reduce((sum, count) => sum + count, 0);
  const open = (view.messageCounts.decided ?? 0) + (view.messageCounts.sending ?? 0);
  return view.pendingStages.length === 0 && total === recipients * STAGES.length && open === 0;
}

function readMessages(database: string, incidentId: string): OutboxRecord[] {
  const store = new IncidentStore(database, { readonly: true });
  try {
    return store.listMessages(incidentId);
  } finally {
    store.close();
  }
}

/** A small seeded generator, so that a run's kill moments can be replayed. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
