import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { SandboxInfo, TocsinProcess } from './processes.js';
import {
  listReceived,
  ROOT,
  startSandboxProcess,
  startServe,
  waitFor,
  writeServeConfig,
} from './processes.js';

const TOKEN = 'e2e-token-0c9d';
const ENV = { TOCSIN_TOKEN: TOKEN, TWILIO_AUTH_TOKEN: 'sandbox-auth-token' };
const PLAYBOOK = 'test/fixtures/playbooks/e2e-escalation.yaml';
const ESCALATION_MS = 3_000;

const firing = readFileSync(
  path.join(ROOT, 'test/fixtures/webhooks/alertmanager-firing.json'),
  'utf8',
);
const resolved = readFileSync(
  path.join(ROOT, 'test/fixtures/webhooks/alertmanager-resolved.json'),
  'utf8',
);

describe('tocsin serve, end to end', () => {
  let sandbox: { process: TocsinProcess; info: SandboxInfo };
  let serve: { process: TocsinProcess; url: string };
  let dir: string;

  beforeAll(async () => {
    sandbox = await startSandboxProcess();
    const written = writeServeConfig(sandbox.info, PLAYBOOK);
    dir = written.dir;
    serve = await startServe(written.config, ENV);
  });

  afterAll(async () => {
    await serve?.process.stop();
    await sandbox?.process.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('alerts, escalates, skips escalation when acknowledged, and sends the all-clear', async () => {
    // First incident: the published firing notification.
    const started = Date.now();
    const first = await post(serve.url, '/hooks/alertmanager', firing);
    expect(first.status).toBe(200);
    const firstId = (
      (await first.json()) as { incidents: { incidentId: string; action: string }[] }
    ).incidents[0];
    expect(firstId?.action).toBe('started');
    const incidentA = firstId?.incidentId ?? '';

    // Second incident: another alert group, acknowledged at once.
    const otherGroup = firing
      .replace('{}:{alertname=\\"InstanceDown\\"}', '{}:{alertname=\\"InstanceDown\\", dc=\\"b\\"}')
      .replace(/localhost:8081/g, 'db-7:9100');
    const second = await post(serve.url, '/hooks/alertmanager', otherGroup);
    const incidentB =
      ((await second.json()) as { incidents: { incidentId: string }[] }).incidents[0]?.incidentId ??
      '';
    expect(incidentB).not.toBe(incidentA);
    const ack = await post(
      serve.url,
      `/api/incidents/${incidentB}/ack`,
      JSON.stringify({ by: 'ada' }),
    );
    expect(ack.status).toBe(200);

    // A repeated notification for the first group starts nothing new.
    const repeat = await post(serve.url, '/hooks/alertmanager', firing);
    expect(
      ((await repeat.json()) as { incidents: { action: string }[] }).incidents[0]?.action,
    ).toBe('deduplicated');

    // The first stage reaches on-call by SMS, rendered from the payload.
    const alerts = await waitFor(
      async () => {
        const found = (await listReceived(sandbox.info)).filter((m) => m.body.includes(incidentA));
        return found.length >= 2 ? found : undefined;
      },
      5_000,
      'first-stage messages',
    );
    expect(alerts.map((m) => m.to).sort()).toEqual(['+12025550101', '+12025550102']);
    expect(alerts[0]?.body).toContain('[CRITICAL] Instance localhost:8081 down (node)');

    // After the escalation delay, management hears about A, by email.
    const escalations = await waitFor(
      async () => {
        const found = (await listReceived(sandbox.info)).filter(
          (m) => m.subject?.startsWith('Unacknowledged') && m.body.includes(incidentA),
        );
        return found.length >= 2 ? found : undefined;
      },
      ESCALATION_MS + 5_000,
      'escalation messages',
    );
    expect(escalations.map((m) => m.to).sort()).toEqual([
      'chioma.obi@example.com',
      'dieter.falk@example.com',
    ]);
    expect(Date.parse(escalations[0]?.receivedAt ?? '')).toBeGreaterThanOrEqual(
      started + ESCALATION_MS - 50,
    );

    // B was acknowledged: its escalation time has passed with nothing sent.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const aboutB = (await listReceived(sandbox.info)).filter((m) => m.body.includes(incidentB));
    expect(aboutB.filter((m) => m.subject?.startsWith('Unacknowledged'))).toEqual([]);
    expect(aboutB).toHaveLength(2);

    // Resolution: everyone in both audiences hears the all-clear for A.
    const resolution = await post(serve.url, '/hooks/alertmanager', resolved);
    expect(
      ((await resolution.json()) as { incidents: { action: string }[] }).incidents[0]?.action,
    ).toBe('resolved');
    const allClear = await waitFor(
      async () => {
        const found = (await listReceived(sandbox.info)).filter(
          (m) => m.body.includes(incidentA) && m.body.includes('is closed'),
        );
        return found.length >= 4 ? found : undefined;
      },
      5_000,
      'resolution messages',
    );
    expect(allClear.map((m) => `${m.channel}:${m.to}`).sort()).toEqual([
      'email:chioma.obi@example.com',
      'email:dieter.falk@example.com',
      'sms:+12025550101',
      'sms:+12025550102',
    ]);

    // The API shows the outcome of every message: SMS delivered, by the stand-in's signed
    // status callbacks; email accepted by the SMTP server, which sends no receipts.
    type View = { status: string; messages: { status: string; channel: string }[] };
    const view = await waitFor(
      async () => {
        const shown = (await (await get(serve.url, `/api/incidents/${incidentA}`)).json()) as View;
        const sms = shown.messages.filter((m) => m.channel === 'sms');
        return sms.every((m) => m.status === 'delivered') ? shown : undefined;
      },
      5_000,
      'delivery receipts',
    );
    expect(view.status).toBe('resolved');
    expect(view.messages).toHaveLength(8);
    expect(
      view.messages.every((m) => m.status === (m.channel === 'sms' ? 'delivered' : 'accepted')),
    ).toBe(true);
  });
});

function post(base: string, route: string, body: string): Promise<Response> {
  return fetch(`${base}${route}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body,
  });
}

function get(base: string, route: string): Promise<Response> {
  return fetch(`${base}${route}`, { headers: { authorization: `Bearer ${TOKEN}` } });
}
