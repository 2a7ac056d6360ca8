import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

import { serve } from '@hono/node-server';
import type { ServerType } from '@hono/node-server';
import { DateTime } from 'luxon';
import { afterEach, describe, expect, it } from 'vitest';

import {
  ChannelError,
  createEngine,
  createWhatsAppCloudChannel,
  IncidentStore,
  ManualClock,
  parseDirectory,
  parsePlaybook,
} from '../../src/index.js';
import { createLogger } from '../../runner/logger.js';
import { MessageRecorder } from '../../runner/sandbox/recorder.js';
import { createWhatsAppStandIn } from '../../runner/sandbox/whatsapp-stand-in.js';
import { createApp } from '../../runner/server/app.js';

const FIXTURES = path.join(import.meta.dirname, '..', 'fixtures', 'webhooks');
const fixture = (name: string): string => readFileSync(path.join(FIXTURES, name), 'utf8');

describe('WhatsApp Cloud API channel against the stand-in', () => {
  let server: ServerType | undefined;
  afterEach(
    () => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())),
  );

  async function start(openWindows: string[] = []) {
    const recorder = new MessageRecorder();
    const app = createWhatsAppStandIn({
      accessToken: 'wa-token',
      phoneNumberId: '106540352242922',
      recorder,
      openWindows: new Set(openWindows),
    });
    // Keep the raw requests, to compare them with the published request shape.
    const requests: unknown[] = [];
    const fetch = async (request: Request): Promise<Response> => {
      requests.push(await request.clone().json());
      return app.fetch(request);
    };
    server = await new Promise<ServerType>((resolve) => {
      const started = serve({ fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(started));
    });
    const port = (server.address() as AddressInfo).port;
    const channel = (windowOpen: boolean) =>
      createWhatsAppCloudChannel({
        baseUrl: `http://127.0.0.1:${port}`,
        apiVersion: 'v23.0',
        phoneNumberId: '106540352242922',
        accessToken: 'wa-token',
        isWindowOpen: () => windowOpen,
      });
    return { recorder, requests, channel };
  }

  const message = (body: object) => ({
    id: 42,
    incidentId: 'inc_1',
    address: '+16505551234',
    subject: null,
    body: JSON.stringify(body),
  });
  const both = {
    text: 'INC-42 resolved at 14:05 UTC',
    template: { name: 'incident_update', language: 'en_US', parameters: ['API outage', '14:05'] },
  };

  it('sends the approved template outside the window, in the documented shape', async () => {
    const { requests, channel } = await start();

    const receipt = await channel(false).send(message(both), AbortSignal.timeout(5_000));

    expect(receipt.providerId).toMatch(/^wamid\./);
    expect(requests).toEqual([
      {
        messaging_product: 'whatsapp',
        recipient_type: 'individual',
        to: '16505551234',
        biz_opaque_callback_data: '42',
        type: 'template',
        template: {
          name: 'incident_update',
          language: { code: 'en_US' },
          components: [
            {
              type: 'body',
              parameters: [
                { type: 'text', text: 'API outage' },
                { type: 'text', text: '14:05' },
              ],
            },
          ],
        },
      },
    ]);
  });

  it('sends free text inside the window', async () => {
    const { requests, channel } = await start(['16505551234']);

    await channel(true).send(message(both), AbortSignal.timeout(5_000));

    expect(requests).toMatchObject([
      { type: 'text', text: { body: 'INC-42 resolved at 14:05 UTC', preview_url: false } },
    ]);
  });

  it('sends the template when the provider says the window closed (131047), or fails without one', async () => {
    const { requests, channel } = await start();

    // The service thought the window open; Meta knows better.
    await channel(true).send(message(both), AbortSignal.timeout(5_000));
    expect(requests.map((request) => (request as { type: string }).type)).toEqual([
      'text',
      'template',
    ]);

    const failure = await channel(true)
      .send(message({ text: 'only text', template: null }), AbortSignal.timeout(5_000))
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ChannelError);
    expect(failure).toMatchObject({ providerCode: '131047', retryable: false });
  });
});

describe('WhatsApp webhooks', () => {
  const vector = JSON.parse(fixture('whatsapp-signature-vector.json')) as {
    app_secret: string;
    expected_header: string;
  };

  function setUp() {
    const store = new IncidentStore(':memory:');
    const engine = createEngine({
      store,
      clock: new ManualClock(DateTime.fromISO('2026-12-03T09:00:00Z')),
      directory: parseDirectory(
        `apiVersion: tocsin/v1
kind: Directory
people:
  - { id: ada, name: Ada, phone: '+16505551234', email: ada@example.com, roles: [oncall] }
`,
        'directory.yaml',
      ),
    });
    engine.loadPlaybooks([
      parsePlaybook(
        `apiVersion: tocsin/v1
kind: Playbook
metadata: { name: wa, version: 1 }
triggers: [{ source: alertmanager }]
audiences:
  oncall: { select: { roles: [oncall] }, channels: [whatsapp, email] }
stages:
  - { id: page, after: 0m, audiences: [oncall] }
messages:
  page:
    oncall:
      whatsapp: { text: Page, template: { name: incident_page, language: en_US } }
      email: { subject: Page, text: Page }
`,
        'wa.yaml',
      ),
    ]);
    engine.start();
    const id = engine.startIncident({ playbook: 'wa', variables: {}, createdBy: 'test' }).id;
    const app = createApp({
      engine,
      store,
      log: createLogger({ level: 'silent' }),
      token: 'api-token',
      maxBodyBytes: 65_536,
      whatsapp: { appSecret: vector.app_secret, verifyToken: 'verify-me' },
    });
    return { store, app, id };
  }

  const post = (app: ReturnType<typeof createApp>, raw: string, signature: string) =>
    app.request('/providers/whatsapp', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-hub-signature-256': signature },
      body: raw,
    });

  it('accepts the published signature vector, and refuses a tampered body or a wrong key', async () => {
    const { app, store } = setUp();
    const raw = fixture('whatsapp-inbound-text.raw.json');

    expect((await post(app, raw, vector.expected_header)).status).toBe(200);
    expect(store.lastInboundAt('whatsapp', '+16505551234')).toBeDefined();
    expect((await post(app, raw.replace('color', 'colour'), vector.expected_header)).status).toBe(
      403,
    );
    expect((await post(app, raw, vector.expected_header.replace(/.$/, '0'))).status).toBe(403);
    expect((await post(app, raw, '')).status).toBe(403);
  });

  it('refuses a signed delivery of the wrong shape with 422, before storing any part of it', async () => {
    const { app, store } = setUp();
    const sign = (raw: string): string =>
      `sha256=${createHmac('sha256', vector.app_secret).update(raw).digest('hex')}`;
    const bodies = [
      '{"entry":[null]}',
      '{"entry":[{"changes":[{"value":{"statuses":5}}]}]}',
      '{"entry":[{"changes":[{"value":{"statuses":[{"id":7,"status":"read"}]}}]}]}',
      // A well-formed message first, then a broken one: neither is stored.
      '{"entry":[{"changes":[{"value":{"messages":[{"from":"16505551234","text":{"body":"ok"}},{"from":5}]}}]}]}',
      '{"entry":{}}',
    ];

    const statuses = [];
    for (const raw of bodies) statuses.push((await post(app, raw, sign(raw))).status);

    expect(statuses).toEqual([422, 422, 422, 422, 422]);
    expect(store.lastInboundAt('whatsapp', '+16505551234')).toBeUndefined();
  });

  it('answers the verification handshake only with the right token', async () => {
    const { app } = setUp();
    const verify = (token: string) =>
      app.request(
        `/providers/whatsapp?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=${token}`,
      );

    const good = await verify('verify-me');
    expect(good.status).toBe(200);
    expect(await good.text()).toBe('1158201444');
    expect((await verify('wrong')).status).toBe(403);
  });

  it('records delivered and failed statuses, and falls back to email after 131047', async () => {
    const { app, store, id } = setUp();
    const sign = (raw: string): string =>
      `sha256=${createHmac('sha256', vector.app_secret).update(raw).digest('hex')}`;
    const [row] = store.claimMessages(1, '2026-12-03T09:00:00.000Z', '2026-12-03T09:01:00.000Z');
    const wamid = 'wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MTE5MjVBOTE3MDk5QUVFM0YA';
    store.recordOutcome(
      row?.id ?? 0,
      { status: 'accepted', providerId: wamid },
      '2026-12-03T09:00:01.000Z',
    );

    const failed = JSON.stringify(JSON.parse(fixture('whatsapp-status-failed-131047.json')));
    expect((await post(app, failed, sign(failed))).status).toBe(200);

    expect(
      store.listMessages(id).map((m) => `${m.channel}:${m.status}:${m.errorCode ?? ''}`),
    ).toEqual(['whatsapp:failed:131047', 'email:decided:']);
  });
});
