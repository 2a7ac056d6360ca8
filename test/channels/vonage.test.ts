import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

import { serve } from '@hono/node-server';
import { DateTime } from 'luxon';
import { afterEach, describe, expect, it } from 'vitest';

import {
  ChannelError,
  createEngine,
  createFailoverChannel,
  createTwilioSmsChannel,
  createVonageSmsChannel,
  IncidentStore,
  ManualClock,
  parseDirectory,
  parsePlaybook,
} from '../../src/index.js';
import type { ChannelAdapter, OutgoingMessage } from '../../src/index.js';
import { createLogger } from '../../runner/logger.js';
import { MessageRecorder } from '../../runner/sandbox/recorder.js';
import { createTwilioStandIn } from '../../runner/sandbox/twilio-stand-in.js';
import { createVonageStandIn } from '../../runner/sandbox/vonage-stand-in.js';
import { createApp } from '../../runner/server/app.js';

const FIXTURES = path.join(import.meta.dirname, '..', 'fixtures', 'webhooks');
const fixture = (name: string): string => readFileSync(path.join(FIXTURES, name), 'utf8');

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (closers.length > 0) await closers.pop()?.();
});

interface Captured {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** A provider that records each request and answers with the given status and body. */
async function capturingProvider(
  answer: () => { status: number; body: string },
): Promise<{ url: string; requests: Captured[] }> {
  const requests: Captured[] = [];
  const server: Server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    request.on('end', () => {
      requests.push({
        method: request.method ?? '',
        url: request.url ?? '',
        headers: request.headers,
        body,
      });
      const { status, body: text } = answer();
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(text);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => new Promise((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

async function standIns(): Promise<{ url: string; recorder: MessageRecorder }> {
  const recorder = new MessageRecorder();
  const { Hono } = await import('hono');
  const app = new Hono();
  app.route('/', createVonageStandIn({ apiKey: 'key', apiSecret: 'secret', recorder }));
  app.route(
    '/',
    createTwilioStandIn({
      accountSid: 'AC00000000000000000000000000000000',
      authToken: 'twilio-token',
      recorder,
    }),
  );
  const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const started = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () =>
      resolve(started),
    );
  });
  closers.push(() => new Promise((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, recorder };
}

const message = (body: string, address = '+447700900000', id = 7): OutgoingMessage => ({
  id,
  incidentId: 'inc_1',
  address,
  subject: null,
  body,
});

async function sendError(channel: ChannelAdapter, text: string): Promise<ChannelError> {
  try {
    await channel.send(message(text), new AbortController().signal);
  } catch (error) {
    if (error instanceof ChannelError) return error;
    throw error;
  }
  throw new Error('the send was taken');
}

describe('Vonage SMS channel', () => {
  it('posts the form Vonage documents: key and secret, number without plus, type, reference, receipt URL', async () => {
    const provider = await capturingProvider(() => ({
      status: 200,
      body: fixture('vonage-sms-send-200.json'),
    }));
    const channel = createVonageSmsChannel({
      baseUrl: provider.url,
      apiKey: 'abcd1234',
      apiSecret: 'secret-0001',
      from: '+15005550006',
      callback: 'https://tocsin.example.test/providers/vonage/status?token=t',
    });
    closers.push(() => channel.close());

    const gsm = await channel.send(message('Server down: Grüße'), new AbortController().signal);
    await channel.send(message('Server down ✓'), new AbortController().signal);

    expect(gsm).toEqual({ providerId: '0C000000217B7F02', receiptExpected: true });
    const [first, second] = provider.requests;
    expect(first?.method).toBe('POST');
    expect(first?.url).toBe('/sms/json');
    expect(first?.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(Object.fromEntries(new URLSearchParams(first?.body))).toEqual({
      api_key: 'abcd1234',
      api_secret: 'secret-0001',
      from: '15005550006',
      to: '447700900000',
      text: 'Server down: Grüße',
      type: 'text',
      'client-ref': '7',
      'status-report-req': '1',
      callback: 'https://tocsin.example.test/providers/vonage/status?token=t',
    });
    // ✓ is outside GSM-7: Vonage must be told, or the phone shows question marks.
    expect(new URLSearchParams(second?.body).get('type')).toBe('unicode');
  });

  it('reads the status inside a 200: retryable, about the recipient, about the account, or the message', async () => {
    let status = '2';
    const provider = await capturingProvider(() => ({
      status: 200,
      body:
        status === '2'
          ? fixture('vonage-sms-send-error-status2.json')
          : JSON.stringify({
              'message-count': '1',
              messages: [{ status, 'error-text': 'error' }],
            }),
    }));
    const channel = createVonageSmsChannel({
      baseUrl: provider.url,
      apiKey: 'k',
      apiSecret: 's',
      from: 'Tocsin',
    });
    closers.push(() => channel.close());

    const classify = async (next: string): Promise<unknown[]> => {
      status = next;
      const error = await sendError(channel, 'hello');
      return [error.providerCode, error.retryable, error.scope ?? null, error.ambiguous];
    };

    expect(await classify('2')).toEqual(['2', false, null, false]);
    expect(await classify('1')).toEqual(['1', true, null, false]);
    expect(await classify('5')).toEqual(['5', true, null, false]);
    expect(await classify('4')).toEqual(['4', false, 'channel', false]);
    expect(await classify('7')).toEqual(['7', false, 'recipient', false]);
    expect(await classify('17')).toEqual(['17', false, 'recipient', false]);
  });

  it('sends a long message through the stand-in as parts and gets one receipt per part', async () => {
    const { url, recorder } = await standIns();
    const receipts: Record<string, unknown>[] = [];
    const receiver = await capturingProvider(() => ({ status: 204, body: '' }));
    const channel = createVonageSmsChannel({
      baseUrl: url,
      apiKey: 'key',
      apiSecret: 'secret',
      from: '15005550006',
      callback: `${receiver.url}/dlr`,
    });
    closers.push(() => channel.close());

    const receipt = await channel.send(message('x'.repeat(200)), new AbortController().signal);
    await expect.poll(() => receiver.requests.length, { timeout: 2_000 }).toBe(2);
    for (const request of receiver.requests)
      receipts.push(JSON.parse(request.body) as Record<string, unknown>);

    expect(recorder.list()).toMatchObject([
      { provider: 'vonage', to: '+447700900000', providerId: receipt.providerId },
    ]);
    expect(receipts).toMatchObject([
      { status: 'delivered', messageId: receipt.providerId, 'client-ref': '7' },
      { status: 'delivered', 'client-ref': '7' },
    ]);
    // Wrong credentials: status 4, a failure for the whole channel.
    const wrong = createVonageSmsChannel({
      baseUrl: url,
      apiKey: 'key',
      apiSecret: 'x',
      from: 'A',
    });
    closers.push(() => wrong.close());
    expect((await sendError(wrong, 'hi')).scope).toBe('channel');
  });
});

describe('SMS failover from Twilio to Vonage', () => {
  it('sends through Vonage when Twilio refuses the account, and passes Twilio over for a while', async () => {
    const { url, recorder } = await standIns();
    let now = 0;
    const twilio = createTwilioSmsChannel({
      baseUrl: url,
      accountSid: 'AC00000000000000000000000000000000',
      authToken: 'not-the-token',
      from: '+15005550006',
    });
    const vonage = createVonageSmsChannel({
      baseUrl: url,
      apiKey: 'key',
      apiSecret: 'secret',
      from: '15005550006',
    });
    const events: unknown[] = [];
    const sms = createFailoverChannel([twilio, vonage], {
      coolDownMs: 60_000,
      now: () => now,
      onFailover: ({ from, to, error, passedOverMs }) =>
        events.push([from, to, error.providerCode, error.scope, passedOverMs]),
    });
    closers.push(() => sms.close());

    const first = await sms.send(message('one'), new AbortController().signal);
    now = 30_000;
    await sms.send(message('two', '+447700900001', 8), new AbortController().signal);

    expect(first.provider).toBe('vonage');
    // Told once, when Twilio refused the account; the second message went straight to Vonage.
    expect(events).toEqual([['twilio', 'vonage', '20003', 'channel', 60_000]]);
    expect(recorder.list().map((received) => [received.provider, received.body])).toEqual([
      ['vonage', 'one'],
      ['vonage', 'two'],
    ]);
  });

  it('does not fail over a number the first provider refused, nor an answer that was lost', async () => {
    const { url, recorder } = await standIns();
    const twilio = createTwilioSmsChannel({
      baseUrl: url,
      accountSid: 'AC00000000000000000000000000000000',
      authToken: 'twilio-token',
      from: '+15005550006',
    });
    const lost: ChannelAdapter = {
      kind: 'sms',
      provider: 'lossy',
      send: () =>
        Promise.reject(
          new ChannelError('E_CHANNEL_UNAVAILABLE', 'reset', { retryable: true, ambiguous: true }),
        ),
      close: () => Promise.resolve(),
    };
    const vonage = createVonageSmsChannel({
      baseUrl: url,
      apiKey: 'key',
      apiSecret: 'secret',
      from: '15005550006',
    });
    const sms = createFailoverChannel([twilio, vonage]);
    const doubtful = createFailoverChannel([lost, vonage]);
    closers.push(() => sms.close());

    const refused = await sms
      .send(message('x', '+15005550001'), new AbortController().signal)
      .catch((error: unknown) => error as ChannelError);
    const ambiguous = await sendError(doubtful, 'maybe taken');

    expect((refused as ChannelError).scope).toBe('recipient');
    expect(ambiguous.ambiguous).toBe(true);
    // Neither went on to Vonage.
    expect(recorder.list()).toEqual([]);
  });
});

describe('GET|POST /providers/vonage/status', () => {
  function setUp() {
    const store = new IncidentStore(':memory:');
    const clock = new ManualClock(DateTime.fromISO('2026-12-04T09:00:00Z'));
    const engine = createEngine({
      store,
      clock,
      directory: parseDirectory(
        `apiVersion: tocsin/v1
kind: Directory
people:
  - { id: ada, name: Ada, phone: '+447700900000', email: ada@example.test, roles: [oncall] }
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
  oncall: { select: { roles: [oncall] }, channels: [sms, email] }
stages:
  - { id: page, after: 0m, audiences: [oncall] }
messages:
  page: { oncall: { sms: Page, email: { subject: Page, text: Page } } }
`,
        'receipts.yaml',
      ),
    ]);
    engine.start();
    const id = engine.startIncident({ playbook: 'receipts', variables: {}, createdBy: 'test' }).id;
    const [sms] = store.claimMessages(1, '2026-12-04T09:00:00.000Z', '2026-12-04T09:01:00.000Z');
    store.recordOutcome(
      sms?.id ?? 0,
      { status: 'accepted', providerId: '0C000000217B7F02', receiptExpected: true },
      '2026-12-04T09:00:01.000Z',
    );
    const app = createApp({
      engine,
      store,
      log: createLogger({ level: 'silent' }),
      token: 'api-token',
      maxBodyBytes: 65_536,
      vonage: { token: 'receipt-token' },
    });
    return { store, app, id, messageId: sms?.id ?? 0 };
  }

  it('marks the message delivered from the receipt of any part, found by client-ref', async () => {
    const { store, app, id, messageId } = setUp();

    const response = await app.request(
      `/providers/vonage/status?token=receipt-token&msisdn=447700900000&messageId=0C000000217B7F03&status=delivered&err-code=0&client-ref=${messageId}`,
    );

    expect(response.status).toBe(204);
    expect(store.listMessages(id).map((row) => [row.channel, row.status])).toEqual([
      ['sms', 'delivered'],
    ]);
  });

  it('records a failed part, tries the next channel, and refuses a wrong token', async () => {
    const { store, app, id, messageId } = setUp();

    const forged = await app.request('/providers/vonage/status?token=guess', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ messageId: '0C000000217B7F02', status: 'delivered' }),
    });
    const failed = await app.request('/providers/vonage/status?token=receipt-token', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        msisdn: '447700900000',
        messageId: '0C000000217B7F02',
        status: 'failed',
        'err-code': '6',
        'client-ref': String(messageId),
      }),
    });

    // A receipt that names another row (here the email) by client-ref moves nothing.
    const emailId = store.listMessages(id).find((row) => row.channel === 'email')?.id ?? 0;
    const misdirected = await app.request(
      `/providers/vonage/status?token=receipt-token&messageId=0D00000000000001&status=failed&err-code=6&client-ref=${emailId}`,
    );
    expect(misdirected.status).toBe(204);
    expect(forged.status).toBe(403);
    expect(failed.status).toBe(204);
    expect(store.listMessages(id).map((row) => [row.channel, row.status, row.errorCode])).toEqual([
      ['sms', 'failed', '6'],
      ['email', 'decided', null],
    ]);
  });
});
