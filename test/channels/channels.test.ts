import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

import { serve } from '@hono/node-server';
import type { ServerType } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { SANDBOX_CREDENTIALS } from '../../runner/config.js';
import { startSandbox } from '../../runner/sandbox/start-sandbox.js';
import type { Sandbox } from '../../runner/sandbox/start-sandbox.js';
import { NO_SUCH_DOMAIN } from '../../runner/sandbox/smtp-stand-in.js';
import {
  countSmsSegments,
  createSmtpEmailChannel,
  createTwilioSmsChannel,
} from '../../src/index.js';

const signal = new AbortController().signal;
const message = {
  id: 7,
  incidentId: 'inc_1',
  address: '+12025550101',
  subject: null,
  body: 'Grüße – disk full',
};

describe('channels against the sandbox stand-ins', () => {
  let sandbox: Sandbox;

  beforeAll(async () => {
    sandbox = await startSandbox();
  });

  afterAll(async () => {
    await sandbox.close();
  });

  it('sends an SMS as a Twilio form POST with basic auth and gets the message sid', async () => {
    const channel = createTwilioSmsChannel({
      baseUrl: sandbox.httpUrl,
      ...pick(SANDBOX_CREDENTIALS),
    });

    const receipt = await channel.send(message, signal);
    await channel.close();

    expect(receipt.providerId).toMatch(/^SM[0-9a-f]{32}$/);
    expect(sandbox.recorder.list().at(-1)).toMatchObject({
      channel: 'sms',
      providerId: receipt.providerId,
      to: '+12025550101',
      from: SANDBOX_CREDENTIALS.from,
      body: 'Grüße – disk full',
    });
  });

  it('answers with Twilio-shaped resources: string counts, RFC 2822 dates', async () => {
    const form = new URLSearchParams({
      To: '+12025550101',
      From: SANDBOX_CREDENTIALS.from,
      Body: 'a'.repeat(161),
    });
    const auth = Buffer.from(
      `${SANDBOX_CREDENTIALS.accountSid}:${SANDBOX_CREDENTIALS.authToken}`,
    ).toString('base64');

    const response = await fetch(
      `${sandbox.httpUrl}/2010-04-01/Accounts/${SANDBOX_CREDENTIALS.accountSid}/Messages.json`,
      {
        method: 'POST',
        headers: {
          authorization: `Basic ${auth}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: form,
      },
    );
    const body = (await response.json()) as Record<string, unknown>;

    expect(response.status).toBe(201);
    expect(body).toMatchObject({
      num_segments: '2',
      num_media: '0',
      status: 'queued',
      direction: 'outbound-api',
    });
    expect(String(body.date_created)).toMatch(
      /^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000$/,
    );
  });

  it('classifies an invalid number as permanent and bad credentials as permanent for the channel', async () => {
    const good = createTwilioSmsChannel({ baseUrl: sandbox.httpUrl, ...pick(SANDBOX_CREDENTIALS) });
    const bad = createTwilioSmsChannel({
      baseUrl: sandbox.httpUrl,
      ...pick(SANDBOX_CREDENTIALS),
      authToken: 'wrong',
    });

    await expect(good.send({ ...message, address: '+15005550001' }, signal)).rejects.toMatchObject({
      code: 'E_CHANNEL_REJECTED',
      retryable: false,
      providerCode: '21211',
      status: 400,
    });
    await expect(bad.send(message, signal)).rejects.toMatchObject({
      retryable: false,
      providerCode: '20003',
      status: 401,
    });
    await Promise.all([good.close(), bad.close()]);
  });

  it('reports an unreachable provider as retryable', async () => {
    const channel = createTwilioSmsChannel({
      baseUrl: 'http://127.0.0.1:9',
      ...pick(SANDBOX_CREDENTIALS),
    });

    await expect(channel.send(message, signal)).rejects.toMatchObject({
      code: 'E_CHANNEL_UNAVAILABLE',
      retryable: true,
    });
    await channel.close();
  });

  it("reads Twilio's 429 with Retry-After as retryable, and how long to wait", async () => {
    const body = readFileSync(
      path.join(import.meta.dirname, '..', 'fixtures', 'webhooks', 'twilio-error-20429-429.json'),
      'utf8',
    );
    const server = await new Promise<ServerType>((resolve) => {
      const started = serve(
        {
          fetch: () =>
            new Response(body, {
              status: 429,
              headers: { 'content-type': 'application/json', 'retry-after': '7' },
            }),
          hostname: '127.0.0.1',
          port: 0,
        },
        () => resolve(started),
      );
    });
    const channel = createTwilioSmsChannel({
      baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      ...pick(SANDBOX_CREDENTIALS),
    });

    await expect(channel.send(message, signal)).rejects.toMatchObject({
      retryable: true,
      providerCode: '20429',
      retryAfterMs: 7_000,
    });
    await channel.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('sends an email over SMTP with subject and text', async () => {
    const channel = createSmtpEmailChannel({
      host: sandbox.smtp.host,
      port: sandbox.smtp.port,
      secure: false,
      from: 'Tocsin <t@example.com>',
    });

    const receipt = await channel.send(
      { ...message, address: 'ada@example.com', subject: 'Disk full', body: 'Grüße\nline two' },
      signal,
    );
    await channel.close();

    expect(receipt.providerId).toMatch(/^<.+>$/);
    expect(sandbox.recorder.list().at(-1)).toMatchObject({
      channel: 'email',
      to: 'ada@example.com',
      subject: 'Disk full',
      body: 'Grüße\nline two',
    });
  });
});

describe('email over SMTP: HTML from the same text, classified refusals', () => {
  let sandbox: Sandbox;
  beforeAll(async () => {
    sandbox = await startSandbox();
  });
  afterAll(async () => {
    await sandbox.close();
  });

  it('sends a text part and an HTML part in which every value is escaped and links work', async () => {
    const channel = createSmtpEmailChannel({
      host: sandbox.smtp.host,
      port: sandbox.smtp.port,
      secure: false,
      from: 'Tocsin <t@example.com>',
    });
    const body =
      'Host <script>alert(1)</script> & "db-1" is down.\nSee https://status.example.com/x?a=1&b=2.\n\nIncident inc_1';

    await channel.send(
      { id: 3, incidentId: 'inc_1', address: 'ada@example.com', subject: 'A & <B>', body },
      new AbortController().signal,
    );
    await channel.close();

    const received = sandbox.recorder.list().at(-1);
    expect(received?.body).toBe(body);
    expect(received?.html).toContain('<title>A &amp; &lt;B&gt;</title>');
    expect(received?.html).toContain(
      '<p>Host &lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;db-1&quot; is down.<br>\nSee <a href="https://status.example.com/x?a=1&amp;b=2">https://status.example.com/x?a=1&amp;b=2</a>.</p>\n<p>Incident inc_1</p>',
    );
    expect(received?.html).not.toContain('<script>');
  });

  it('reads a refused mailbox as permanent for the recipient', async () => {
    const channel = createSmtpEmailChannel({
      host: sandbox.smtp.host,
      port: sandbox.smtp.port,
      secure: false,
      from: 'Tocsin <t@example.com>',
    });

    const error = await channel
      .send(
        {
          id: 4,
          incidentId: 'inc_1',
          address: `gone@${NO_SUCH_DOMAIN}`,
          subject: 'x',
          body: 'x',
        },
        new AbortController().signal,
      )
      .catch((caught: unknown) => caught);
    await channel.close();

    expect(error).toMatchObject({
      code: 'E_CHANNEL_REJECTED',
      retryable: false,
      scope: 'recipient',
      providerCode: '550',
    });
  });
});

describe('countSmsSegments', () => {
  // The worked examples of ../shared/specs/PROVIDERS.md §4.
  it.each([
    ['a'.repeat(160), 'GSM-7', 160, 1],
    ['a'.repeat(161), 'GSM-7', 161, 2],
    [`${'a'.repeat(159)}€`, 'GSM-7', 161, 2],
    [`${'a'.repeat(152)}€${'a'.repeat(152)}`, 'GSM-7', 306, 3],
    ['[SEV1] API down - see status page', 'GSM-7', 35, 1],
    ['[SEV1] API down – see status page', 'UCS-2', 33, 1],
    [`ç${'a'.repeat(69)}`, 'UCS-2', 70, 1],
    [`${'a'.repeat(69)}🔥`, 'UCS-2', 71, 2],
  ])('counts %#: %s', (text, encoding, units, segments) => {
    expect(countSmsSegments(text)).toEqual({ encoding, units, segments });
  });
});

function pick(credentials: typeof SANDBOX_CREDENTIALS): {
  accountSid: string;
  authToken: string;
  from: string;
} {
  return {
    accountSid: credentials.accountSid,
    authToken: credentials.authToken,
    from: credentials.from,
  };
}
