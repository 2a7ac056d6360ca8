import { readFileSync } from 'node:fs';
import { DateTime } from 'luxon';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import {
  createEngine,
  IncidentStore,
  isTwilioSignatureValid,
  ManualClock,
  parseDirectory,
  parsePlaybook,
  readTwilioForm,
  twilioSignature,
} from '../../src/index.js';
import { createLogger } from '../../runner/logger.js';
import { createApp } from '../../runner/server/app.js';

const FIXTURES = path.join(import.meta.dirname, '..', 'fixtures', 'webhooks');
const vectors = JSON.parse(
  readFileSync(path.join(FIXTURES, 'twilio-signature-vectors.json'), 'utf8'),
) as {
  docs: {
    auth_token: string;
    url: string;
    params: Record<string, string>;
    expected_signature: string;
  };
  status_callback: {
    auth_token: string;
    url: string;
    form_body: string;
    expected_signature: string;
  };
};

describe('X-Twilio-Signature', () => {
  it('matches the published example and the vector over a status callback', () => {
    const { docs, status_callback: callback } = vectors;

    expect(twilioSignature(docs.auth_token, docs.url, docs.params)).toBe(docs.expected_signature);
    expect(
      twilioSignature(callback.auth_token, callback.url, readTwilioForm(callback.form_body)),
    ).toBe(callback.expected_signature);
  });

  it('rejects a tampered body, a wrong key, another URL and a missing header', () => {
    const { status_callback: callback } = vectors;
    const params = readTwilioForm(callback.form_body);
    const check = (
      token: string,
      url: string,
      body: Record<string, string | string[]>,
      signature?: string,
    ): boolean => isTwilioSignatureValid(token, url, body, signature);

    expect(check(callback.auth_token, callback.url, params, callback.expected_signature)).toBe(
      true,
    );
    expect(
      check(
        callback.auth_token,
        callback.url,
        { ...params, MessageStatus: 'failed' },
        callback.expected_signature,
      ),
    ).toBe(false);
    expect(check('another-token', callback.url, params, callback.expected_signature)).toBe(false);
    expect(
      check(
        callback.auth_token,
        'https://hooks.example.test/twilio/status',
        params,
        callback.expected_signature,
      ),
    ).toBe(false);
    expect(check(callback.auth_token, callback.url, params, undefined)).toBe(false);
  });
});

describe('POST /providers/twilio/status', () => {
  const TOKEN = 'test-auth-token-0000000000000000';
  const PUBLIC = 'https://tocsin.example.test';

  function setUp() {
    const store = new IncidentStore(':memory:');
    const clock = new ManualClock(DateTime.fromISO('2026-12-03T09:00:00Z'));
    const engine = createEngine({
      store,
      clock,
      directory: parseDirectory(
        `apiVersion: tocsin/v1
kind: Directory
people:
  - { id: ada, name: Ada, phone: '+15558675310', roles: [oncall] }
`,
        'directory.yaml',
      ),
    });
    engine.loadPlaybooks([
      parsePlaybook(
        `apiVersion: tocsin/v1
kind: Playbook
metadata: { name: receipts, version: 1 }
triggers: [{ source: alertmanager }]
audiences:
  oncall: { select: { roles: [oncall] }, channels: [sms] }
stages:
  - { id: page, after: 0m, audiences: [oncall] }
messages:
  page: { oncall: { sms: Page } }
`,
        'receipts.yaml',
      ),
    ]);
    engine.start();
    const id = engine.startIncident({ playbook: 'receipts', variables: {}, createdBy: 'test' }).id;
    const [message] = store.claimMessages(
      1,
      '2026-12-03T09:00:00.000Z',
      '2026-12-03T09:01:00.000Z',
    );
    store.recordOutcome(
      message?.id ?? 0,
      { status: 'accepted', providerId: 'SMbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb' },
      '2026-12-03T09:00:01.000Z',
    );
    const app = createApp({
      engine,
      store,
      log: createLogger({ level: 'silent' }),
      token: 'api-token',
      maxBodyBytes: 65_536,
      twilio: { authToken: TOKEN, publicUrl: () => PUBLIC },
    });
    return { store, app, id };
  }

  function post(
    app: ReturnType<typeof createApp>,
    fixture: string,
    signWith = TOKEN,
  ): Promise<Response> {
    const params = JSON.parse(readFileSync(path.join(FIXTURES, fixture), 'utf8')) as Record<
      string,
      string
    >;
    const url = `${PUBLIC}/providers/twilio/status`;
    return Promise.resolve(
      app.request(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'x-twilio-signature': twilioSignature(signWith, url, params),
        },
        body: new URLSearchParams(params).toString(),
      }),
    );
  }

  it('marks the message delivered and writes the receipt to the audit log', async () => {
    const { store, app, id } = setUp();

    const response = await post(app, 'twilio-status-callback-delivered.json');

    expect(response.status).toBe(204);
    expect(store.listMessages(id).map((message) => message.status)).toEqual(['delivered']);
    const receipt = store.listAudit(id).find((entry) => entry.type === 'message.receipt');
    expect(receipt?.data).toMatchObject({ status: 'delivered', providerStatus: 'delivered' });
    // A repeated or late receipt changes nothing.
    await post(app, 'twilio-status-callback-undelivered-30003.json');
    expect(store.listMessages(id).map((message) => message.status)).toEqual(['delivered']);
  });

  it('records an undelivered message as failed with the carrier code', async () => {
    const { store, app, id } = setUp();

    await post(app, 'twilio-status-callback-undelivered-30003.json');

    expect(store.listMessages(id)).toMatchObject([{ status: 'failed', errorCode: '30003' }]);
  });

  it('refuses a callback signed with another token and changes nothing', async () => {
    const { store, app, id } = setUp();

    const response = await post(app, 'twilio-status-callback-delivered.json', 'wrong-token');

    expect(response.status).toBe(403);
    expect(store.listMessages(id).map((message) => message.status)).toEqual(['accepted']);
  });
});
