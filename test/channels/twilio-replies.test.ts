import { readFileSync } from 'node:fs';
import path from 'node:path';

import { DateTime } from 'luxon';
import { describe, expect, it } from 'vitest';

import {
  createEngine,
  IncidentStore,
  interpretReply,
  ManualClock,
  parseDirectory,
  parsePlaybook,
  twilioSignature,
} from '../../src/index.js';
import { createLogger } from '../../runner/logger.js';
import { createApp } from '../../runner/server/app.js';

const FIXTURES = path.join(import.meta.dirname, '..', 'fixtures', 'webhooks');
const TOKEN = 'test-auth-token-0000000000000000';
const PUBLIC = 'https://tocsin.example.test';
const START = DateTime.fromISO('2026-12-03T09:00:00Z');

function setUp() {
  const store = new IncidentStore(':memory:');
  const clock = new ManualClock(START);
  const engine = createEngine({
    store,
    clock,
    directory: parseDirectory(
      `apiVersion: tocsin/v1
kind: Directory
people:
  - { id: ada, name: Ada, phone: '+15558675310', email: ada@example.com, roles: [oncall] }
  - { id: bert, name: Bert, phone: '+15558675311', roles: [oncall], locale: de-DE }
  - { id: carl, name: Carl, phone: '+15558675312', roles: [customer] }
`,
      'directory.yaml',
    ),
  });
  engine.loadPlaybooks([
    parsePlaybook(
      `apiVersion: tocsin/v1
kind: Playbook
metadata: { name: replies, version: 1 }
triggers: [{ source: alertmanager }]
audiences:
  oncall: { select: { roles: [oncall] }, channels: [sms, email] }
stages:
  - { id: page, after: 0m, audiences: [oncall] }
  - { id: update, after: 10m, audiences: [oncall] }
messages:
  page: { oncall: { sms: 'Page. Reply ACK {{ incident.code }}', email: { subject: Page, text: Page } } }
  update: { oncall: { sms: Update, email: { subject: Update, text: Update } } }
`,
      'replies.yaml',
    ),
  ]);
  engine.start();
  const incident = engine.startIncident({ playbook: 'replies', variables: {}, createdBy: 'test' });
  const app = createApp({
    engine,
    store,
    log: createLogger({ level: 'silent' }),
    token: 'api-token',
    maxBodyBytes: 65_536,
    twilio: { authToken: TOKEN, publicUrl: () => PUBLIC },
  });
  const acknowledgedBy = (): string | null =>
    (store.getIncident(incident.id)?.snapshot as { context: { acknowledgedBy: string | null } })
      .context.acknowledgedBy;
  return { store, clock, app, id: incident.id, code: incident.replyCode ?? '', acknowledgedBy };
}

async function reply(
  app: ReturnType<typeof createApp>,
  changes: Record<string, string>,
  fixture = 'twilio-inbound-sms.json',
  signWith = TOKEN,
): Promise<{ status: number; text: string }> {
  const params = {
    ...(JSON.parse(readFileSync(path.join(FIXTURES, fixture), 'utf8')) as Record<string, string>),
    ...changes,
  };
  const url = `${PUBLIC}/providers/twilio/inbound`;
  const response = await app.request(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      'x-twilio-signature': twilioSignature(signWith, url, params),
    },
    body: new URLSearchParams(params).toString(),
  });
  return { status: response.status, text: await response.text() };
}

describe('SMS replies', () => {
  it('reads the keyword and the code', () => {
    expect(interpretReply('ACK 1234')).toEqual({ kind: 'acknowledge', code: '1234' });
    expect(interpretReply(' ok! ')).toEqual({ kind: 'acknowledge' });
    expect(interpretReply('Quittiert 482113')).toEqual({ kind: 'acknowledge', code: '482113' });
    expect(interpretReply('4821')).toEqual({ kind: 'acknowledge', code: '4821' });
    expect(interpretReply('stop')).toEqual({ kind: 'opt-out' });
    expect(interpretReply('START')).toEqual({ kind: 'opt-in' });
    expect(interpretReply('who is this?')).toEqual({ kind: 'unknown' });
  });

  it('acknowledges the incident whose code the reply quotes, and says so', async () => {
    const { app, code, acknowledgedBy, store, id } = setUp();
    expect(store.listMessages(id).find((m) => m.personId === 'ada')?.body).toBe(
      `Page. Reply ACK ${code}`,
    );

    const answer = await reply(app, { Body: `ACK ${code}` });

    expect(answer.status).toBe(200);
    expect(answer.text).toContain(`Acknowledged incident ${code}.`);
    expect(acknowledgedBy()).toBe('ada');
  });

  it('acknowledges with a bare OK the incident that last messaged the person, in their language', async () => {
    const { app, code, acknowledgedBy } = setUp();

    const answer = await reply(app, { Body: 'ok', From: '+15558675311' });

    expect(answer.text).toContain(`Vorfall ${code} quittiert.`);
    expect(acknowledgedBy()).toBe('bert');
  });

  it('changes nothing for a code that names no open incident, or an unknown sender', async () => {
    const { app, acknowledgedBy } = setUp();

    expect((await reply(app, { Body: 'ACK 0000' })).text).toContain('No open incident matches');
    const stranger = await reply(app, { Body: 'ACK', From: '+15550000000' });
    expect(stranger.text).toBe('<?xml version="1.0" encoding="UTF-8"?><Response></Response>');
    expect(acknowledgedBy()).toBeNull();
  });

  it('refuses an acknowledgement by someone in the directory whom the incident never told', async () => {
    const { app, code, acknowledgedBy } = setUp();

    const answer = await reply(app, { Body: `ACK ${code}`, From: '+15558675312' });

    expect(answer.text).toContain('No open incident matches');
    expect(acknowledgedBy()).toBeNull();
  });

  it('keeps STOP in the ledger: later stages reach the person on the next channel', async () => {
    const { app, clock, store, id } = setUp();

    await reply(app, {}, 'twilio-inbound-sms-stop.json');
    clock.advanceTo(START.plus({ minutes: 10 }));

    const update = store.listMessages(id).filter((m) => m.stageId === 'update');
    expect(update.map((m) => `${m.personId}:${m.channel}`).sort()).toEqual([
      'ada:email',
      'bert:sms',
    ]);
    const ledger = store.db
      .prepare('SELECT actor, type FROM audit WHERE incident_id IS NULL')
      .all() as { actor: string; type: string }[];
    expect(ledger).toEqual([{ actor: 'ada', type: 'recipient.opted-out' }]);
  });

  it('records a person that STOP leaves without a channel as skipped, with the reason', async () => {
    const { app, clock, store, id } = setUp();

    await reply(app, { Body: 'STOP', From: '+15558675311' }, 'twilio-inbound-sms-stop.json');
    clock.advanceTo(START.plus({ minutes: 10 }));

    const skipped = store.listAudit(id).filter((entry) => entry.type === 'recipient.skipped');
    expect(skipped.map((entry) => entry.data)).toEqual([
      { stageId: 'update', personId: 'bert', audienceId: 'oncall', reason: 'opted-out' },
    ]);
    expect(
      store
        .listMessages(id)
        .filter((message) => message.stageId === 'update')
        .map((message) => message.personId),
    ).toEqual(['ada']);
  });

  it('refuses a reply that is not signed with the auth token', async () => {
    const { app, acknowledgedBy } = setUp();

    const answer = await reply(app, { Body: 'ACK' }, 'twilio-inbound-sms.json', 'wrong-token');

    expect(answer.status).toBe(403);
    expect(acknowledgedBy()).toBeNull();
  });
});
