import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { DateTime } from 'luxon';
import { beforeEach, describe, expect, it } from 'vitest';

import { createApp } from '../../runner/server/app.js';
import {
  createEngine,
  IncidentStore,
  loadDirectory,
  loadPlaybook,
  ManualClock,
  noopLogger,
  verifyPagerDutySignature,
} from '../../src/index.js';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const TOKEN = 'webhook-test-token';
const fixture = (name: string): string =>
  readFileSync(path.join(ROOT, 'test/fixtures/webhooks', name), 'utf8');
const vector = JSON.parse(fixture('pagerduty-v3-signature-vector.json')) as {
  secret: string;
  valid_header: string;
  invalid_header: string;
  rotation_example_header: string;
};

describe('webhook sources and manual triggers', () => {
  let store: IncidentStore;
  let app: ReturnType<typeof createApp>;
  let engine: ReturnType<typeof createEngine>;

  beforeEach(async () => {
    store = new IncidentStore(':memory:');
    const clock = new ManualClock(DateTime.fromISO('2026-12-03T09:00:00Z'));
    const directory = await loadDirectory(path.join(ROOT, 'examples/directory.yaml'));
    engine = createEngine({ store, clock, directory });
    engine.loadPlaybooks([
      await loadPlaybook(path.join(ROOT, 'test/fixtures/playbooks/multi-source.yaml')),
    ]);
    app = createApp({
      engine,
      store,
      log: noopLogger,
      token: TOKEN,
      maxBodyBytes: 64 * 1024,
      webhookSecrets: { pagerduty: vector.secret },
    });
  });

  function post(
    route: string,
    body: string,
    headers: Record<string, string> = {},
  ): Promise<Response> {
    return Promise.resolve(
      app.request(route, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${TOKEN}`,
          'content-type': 'application/json',
          ...headers,
        },
        body,
      }),
    );
  }

  async function actions(response: Response): Promise<string[]> {
    const body = (await response.json()) as { incidents: { action: string }[] };
    return body.incidents.map((incident) => incident.action);
  }

  function signed(body: string): Record<string, string> {
    return {
      'x-pagerduty-signature': `v1=${createHmac('sha256', vector.secret).update(body).digest('hex')}`,
    };
  }

  it('starts an incident from Grafana and resolves it with the resolved notification', async () => {
    const firing = fixture('grafana-firing.json');
    const resolved = JSON.stringify({
      ...(JSON.parse(firing) as object),
      status: 'resolved',
      alerts: (JSON.parse(firing) as { alerts: object[] }).alerts.map((alert) => ({
        ...alert,
        status: 'resolved',
      })),
    });

    expect(await actions(await post('/hooks/grafana', firing))).toEqual(['started']);
    expect(await actions(await post('/hooks/grafana', firing))).toEqual(['deduplicated']);
    expect(await actions(await post('/hooks/grafana', resolved))).toEqual(['resolved']);
    expect(store.listMessages(store.listIncidents()[0]?.id ?? '').map((m) => m.body)).toContain(
      'This alert was triggered for zone us-1 (My Super Webhook)',
    );
  });

  it('checks a signed Grafana delivery with its timestamp, and refuses tampering, a wrong key and a replay', async () => {
    const secret = 'grafana-contact-point-secret';
    const header = 'X-Grafana-Alerting-Signature-Timestamp';
    const grafana = createApp({
      engine,
      store,
      log: noopLogger,
      token: TOKEN,
      maxBodyBytes: 64 * 1024,
      webhookSecrets: { grafana: secret, grafanaTimestampHeader: header },
    });
    const firing = fixture('grafana-firing.json');
    const now = Math.floor(Date.now() / 1000);
    const sign = (body: string, at: number, key = secret): Record<string, string> => ({
      'x-grafana-alerting-signature': createHmac('sha256', key)
        .update(`${at}:${body}`)
        .digest('hex'),
      [header]: String(at),
    });
    const send = (body: string, headers: Record<string, string>) =>
      Promise.resolve(
        grafana.request('/hooks/grafana', {
          method: 'POST',
          headers: {
            authorization: `Bearer ${TOKEN}`,
            'content-type': 'application/json',
            ...headers,
          },
          body,
        }),
      );

    const tampered = await send(firing.replace('us-1', 'eu-1'), sign(firing, now));
    const wrongKey = await send(firing, sign(firing, now, 'another-secret'));
    const replayed = await send(firing, sign(firing, now - 600));
    const unsigned = await send(firing, {});
    expect([tampered.status, wrongKey.status, replayed.status, unsigned.status]).toEqual([
      401, 401, 401, 401,
    ]);
    expect(store.listIncidents()).toEqual([]);

    expect(await actions(await send(firing, sign(firing, now - 30)))).toEqual(['started']);
  });

  it('follows a PagerDuty incident from triggered to resolved, signed', async () => {
    const triggered = fixture('pagerduty-v3-incident-triggered.json');
    const resolved = fixture('pagerduty-v3-incident-resolved.json');

    expect(await actions(await post('/hooks/pagerduty', triggered, signed(triggered)))).toEqual([
      'started',
    ]);
    expect(await actions(await post('/hooks/pagerduty', resolved, signed(resolved)))).toEqual([
      'resolved',
    ]);
    const [incident] = store.listIncidents();
    expect(store.listMessages(incident?.id ?? '')[0]?.body).toBe(
      'A little bump in the road (PagerDuty)',
    );
  });

  it('refuses a PagerDuty delivery without a valid signature and writes nothing', async () => {
    const triggered = fixture('pagerduty-v3-incident-triggered.json');

    const unsigned = await post('/hooks/pagerduty', triggered);
    const tampered = await post(
      '/hooks/pagerduty',
      triggered.replace('bump', 'dump'),
      signed(triggered),
    );

    expect([unsigned.status, tampered.status]).toEqual([401, 401]);
    expect(await tampered.json()).toEqual({ error: 'the request was not authenticated' });
    expect(store.listIncidents()).toEqual([]);
  });

  it('passes the published PagerDuty signature vector, with rotation, and rejects a wrong key', () => {
    const body = readFileSync(
      path.join(ROOT, 'test/fixtures/webhooks/pagerduty-v3-signed-body.raw.json'),
    );

    expect(verifyPagerDutySignature(body, vector.valid_header, vector.secret)).toBe(true);
    expect(verifyPagerDutySignature(body, vector.rotation_example_header, vector.secret)).toBe(
      true,
    );
    expect(verifyPagerDutySignature(body, vector.invalid_header, vector.secret)).toBe(false);
    expect(verifyPagerDutySignature(body, vector.valid_header, 'another-secret')).toBe(false);
    expect(verifyPagerDutySignature(body, undefined, vector.secret)).toBe(false);
  });

  it('uses the dedupe key and resolve rule of a generic JSON trigger', async () => {
    const event = (state: string): string =>
      JSON.stringify({
        kind: 'outage',
        state,
        source: 'uptime-probe',
        alert: { id: 'A-7', title: 'Portal down' },
      });

    expect(await actions(await post('/hooks/json', event('alerting')))).toEqual(['started']);
    expect(await actions(await post('/hooks/json', event('alerting')))).toEqual(['deduplicated']);
    expect(await actions(await post('/hooks/json', event('ok')))).toEqual(['resolved']);
    const other = JSON.stringify({ kind: 'maintenance', alert: { id: 'B-1', title: 'x' } });
    expect(await actions(await post('/hooks/json', other))).toEqual([]);
  });

  it('answers 404 for an unknown source', async () => {
    const response = await post('/hooks/nagios', '{}');

    expect(response.status).toBe(404);
  });

  it('lets a person with a declare role start an incident by hand, and nobody else', async () => {
    const body = (by: string, variables: object): string =>
      JSON.stringify({ playbook: 'multi-source', by, variables });

    const allowed = await post('/api/incidents', body('frieda', { summary: 'Phishing wave' }));
    const refused = await post('/api/incidents', body('ada', { summary: 'Phishing wave' }));
    const unknown = await post('/api/incidents', body('frieda', { summry: 'typo' }));

    expect(allowed.status).toBe(201);
    expect(await allowed.json()).toMatchObject({
      createdBy: 'frieda',
      playbook: { name: 'multi-source' },
    });
    expect(refused.status).toBe(403);
    expect(unknown.status).toBe(422);
    const missing = await post('/api/incidents', body('frieda', {}));
    expect(missing.status).toBe(422);
    expect(((await missing.json()) as { error: string }).error).toContain(
      'variable "summary" is required and was not given',
    );
    expect(store.listIncidents()).toHaveLength(1);
  });
});
