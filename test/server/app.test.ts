import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';

import { DateTime } from 'luxon';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { createLogger } from '../../runner/logger.js';
import { createApp } from '../../runner/server/app.js';
import {
  createEngine,
  IncidentStore,
  loadDirectory,
  loadPlaybook,
  ManualClock,
} from '../../src/index.js';
import type { Engine } from '../../src/index.js';

const TOKEN = 'app-test-token';
const ROOT = path.resolve(import.meta.dirname, '..', '..');
const firing = readFileSync(
  path.join(ROOT, 'test/fixtures/webhooks/alertmanager-firing.json'),
  'utf8',
);

describe('HTTP app', () => {
  let dir: string;
  let store: IncidentStore;
  let engine: Engine;
  let app: ReturnType<typeof createApp>;
  let logLines: string[];

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'tocsin-app-'));
    store = new IncidentStore(path.join(dir, 'tocsin.db'));
    const clock = new ManualClock(DateTime.fromISO('2026-12-03T09:00:00Z'));
    logLines = [];
    const log = createLogger({ destination: memoryStream(logLines), level: 'debug' });
    engine = createEngine({
      store,
      clock,
      directory: await loadDirectory(path.join(ROOT, 'examples/directory.yaml')),
      log,
    });
    engine.loadPlaybooks([await loadPlaybook(path.join(ROOT, 'playbooks/instance-down.yaml'))]);
    app = createApp({ engine, store, log, token: TOKEN, maxBodyBytes: 4096 });
  });

  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts an incident from an Alertmanager notification', async () => {
    const response = await hook(firing);

    expect(response.status).toBe(200);
    const body = (await response.json()) as { incidents: { action: string }[] };
    expect(body.incidents).toEqual([
      expect.objectContaining({ action: 'started', playbook: 'instance-down' }),
    ]);
    expect(store.listIncidents()).toHaveLength(1);
  });

  it.each([
    ['invalid JSON', { body: '{"version": "4",', type: 'application/json' }, 400],
    ['a wrong content type', { body: firing, type: 'text/plain' }, 415],
    ['no content type', { body: new Blob([firing]), type: null }, 415],
    [
      'an oversized body',
      { body: JSON.stringify({ pad: 'x'.repeat(5000) }), type: 'application/json' },
      413,
    ],
    ['a missing token', { body: firing, type: 'application/json', token: null }, 401],
    ['a wrong token', { body: firing, type: 'application/json', token: 'not-the-token' }, 401],
    [
      'a body without groupKey',
      {
        body: JSON.stringify({ ...JSON.parse(firing), groupKey: undefined }),
        type: 'application/json',
      },
      422,
    ],
    [
      'a wrong version',
      { body: firing.replace('"version": "4"', '"version": "3"'), type: 'application/json' },
      422,
    ],
    [
      'alerts that are not a list',
      { body: JSON.stringify({ ...JSON.parse(firing), alerts: {} }), type: 'application/json' },
      422,
    ],
    ['a JSON array', { body: '[1,2]', type: 'application/json' }, 422],
    [
      'a payload without the title a variable needs',
      { body: firing.replace(/"title": "[^"]*",/g, ''), type: 'application/json' },
      422,
    ],
  ] as const)(
    'answers %s with a one-line reason and changes nothing',
    async (_name, request, status) => {
      const before = dumpDatabase(store);

      const response = await hook(
        request.body,
        request.type,
        'token' in request ? request.token : TOKEN,
      );

      expect(response.status).toBe(status);
      const body = (await response.json()) as { error: string };
      expect(body.error).toMatch(/^[^\n]+$/);
      expect(dumpDatabase(store)).toEqual(before);
    },
  );

  it('says only that a request with a bad token was not authenticated', async () => {
    const response = await hook(firing, 'application/json', 'wrong');

    expect(await response.json()).toEqual({ error: 'the request was not authenticated' });
    expect(response.headers.get('www-authenticate')).toBe('Bearer');
  });

  it('does not start a second incident for a repeated notification of the same group', async () => {
    await hook(firing);
    const response = await hook(firing);

    const body = (await response.json()) as { incidents: { action: string }[] };
    expect(body.incidents[0]?.action).toBe('deduplicated');
    expect(store.listIncidents()).toHaveLength(1);
  });

  it('acknowledges an incident and reports it', async () => {
    const started = (await (await hook(firing)).json()) as { incidents: { incidentId: string }[] };
    const id = started.incidents[0]?.incidentId ?? '';

    const response = await app.request(`/api/incidents/${id}/ack`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ by: 'ada' }),
    });

    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({
      acknowledged: true,
      acknowledgedBy: 'ada',
      pendingStages: [],
    });
  });

  it.each([
    ['a JSON array', '[1]'],
    ['a number as "by"', '{"by": 5}'],
    ['an overlong "by"', JSON.stringify({ by: 'x'.repeat(65) })],
    ['an email address as "by"', JSON.stringify({ by: 'zed.private@example.com' })],
    ['a person not in the directory', JSON.stringify({ by: 'zed' })],
  ])('refuses an acknowledgement whose body is %s', async (_name, body) => {
    const started = (await (await hook(firing)).json()) as { incidents: { incidentId: string }[] };
    const id = started.incidents[0]?.incidentId ?? '';
    const before = dumpDatabase(store);

    const response = await app.request(`/api/incidents/${id}/ack`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body,
    });

    expect(response.status).toBe(422);
    expect(dumpDatabase(store)).toEqual(before);
  });

  it('refuses an approval for a stage without a gate with 403, and one without a stage with 422', async () => {
    const started = (await (await hook(firing)).json()) as { incidents: { incidentId: string }[] };
    const id = started.incidents[0]?.incidentId ?? '';
    const approve = (body: string): Promise<Response> =>
      Promise.resolve(
        app.request(`/api/incidents/${id}/approve`, {
          method: 'POST',
          headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
          body,
        }),
      );

    const ungated = await approve(JSON.stringify({ stage: 'escalate-management', by: 'chioma' }));
    const noStage = await approve(JSON.stringify({ by: 'chioma' }));

    expect(ungated.status).toBe(403);
    expect(((await ungated.json()) as { code: string }).code).toBe('E_ENGINE_NOT_APPROVER');
    expect(noStage.status).toBe(422);
  });

  it('answers 404 for an unknown incident and 409 for an ack of a closed one', async () => {
    const unknown = await app.request('/api/incidents/inc_nope/ack', {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(unknown.status).toBe(404);

    const started = (await (await hook(firing)).json()) as { incidents: { incidentId: string }[] };
    const id = started.incidents[0]?.incidentId ?? '';
    engine.resolve(id, 'test');
    const closed = await app.request(`/api/incidents/${id}/ack`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(closed.status).toBe(409);
  });

  it('lists incidents with their state and shows one with its messages', async () => {
    const started = (await (await hook(firing)).json()) as { incidents: { incidentId: string }[] };
    const id = started.incidents[0]?.incidentId ?? '';

    const list = (await (await api('/api/incidents')).json()) as {
      incidents: { id: string; state: string }[];
    };
    const one = (await (await api(`/api/incidents/${id}`)).json()) as {
      messages: { stageId: string; channel: string }[];
    };

    expect(list.incidents).toEqual([expect.objectContaining({ id, state: 'open.unacknowledged' })]);
    expect(one.messages.map((m) => `${m.stageId}:${m.channel}`)).toEqual([
      'alert-oncall:sms',
      'alert-oncall:sms',
    ]);
    expect((await api('/api/incidents/inc_missing')).status).toBe(404);
  });

  it('keeps phone numbers, addresses, tokens and message bodies out of the log', async () => {
    const started = (await (await hook(firing)).json()) as { incidents: { incidentId: string }[] };
    await hook('{bad', 'application/json');
    await hook(firing, 'application/json', 'wrong-token-value');
    await api(`/api/incidents/${started.incidents[0]?.incidentId ?? ''}`);

    const log = logLines.join('\n');
    expect(logLines.length).toBeGreaterThan(3);
    expect(log).not.toMatch(/\+\d{7,}/);
    expect(log).not.toMatch(/@example\.com/);
    expect(log).not.toContain(TOKEN);
    expect(log).not.toContain('wrong-token-value');
    expect(log).not.toContain('localhost:8081 down');
    for (const line of logLines) expect(() => JSON.parse(line) as unknown).not.toThrow();
  });

  function hook(
    body: string | Blob,
    type: string | null = 'application/json',
    token: string | null = TOKEN,
  ): Promise<Response> {
    const headers: Record<string, string> = {};
    if (type) headers['content-type'] = type;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    return Promise.resolve(app.request('/hooks/alertmanager', { method: 'POST', headers, body }));
  }

  function api(route: string): Promise<Response> {
    return Promise.resolve(app.request(route, { headers: { authorization: `Bearer ${TOKEN}` } }));
  }
});

function dumpDatabase(store: IncidentStore): Record<string, unknown[]> {
  const tables = [
    'playbook_versions',
    'incidents',
    'timers',
    'outbox',
    'acknowledgements',
    'audit',
  ];
  return Object.fromEntries(
    tables.map((table) => [table, store.db.prepare(`SELECT * FROM ${table}`).all()]),
  );
}

function memoryStream(lines: string[]): Writable & { write(chunk: string): boolean } {
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(
        ...chunk
          .toString('utf8')
          .split('\n')
          .filter((line) => line !== ''),
      );
      callback();
    },
  });
}
