import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import {
  ChannelError,
  checkWebhookSignature,
  createChatWebhooksChannel,
  webhookSignature,
} from '../../src/index.js';
import type { OutgoingMessage } from '../../src/index.js';
import { loadServiceConfig } from '../../runner/config.js';
import { createLogger } from '../../runner/logger.js';
import { startService } from '../../runner/service.js';
import type { Service } from '../../runner/service.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (closers.length > 0) await closers.pop()?.();
});

interface Captured {
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

async function receiver(
  answer: () => { status: number; body?: string; headers?: Record<string, string> } = () => ({
    status: 200,
    body: 'ok',
  }),
): Promise<{ url: string; requests: Captured[] }> {
  const requests: Captured[] = [];
  const server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    request.on('end', () => {
      requests.push({ url: request.url ?? '', headers: request.headers, body });
      const reply = answer();
      response.writeHead(reply.status, reply.headers ?? {});
      response.end(reply.body ?? '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => new Promise((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

const message = (room: string, body = 'Datenbank <db-1> down & "wer" hilft?'): OutgoingMessage => ({
  id: 41,
  incidentId: 'inc_7',
  address: room,
  subject: null,
  body,
});
const signal = (): AbortSignal => new AbortController().signal;

describe('chat webhooks', () => {
  it('posts what Slack, a Teams workflow and a signed JSON receiver each expect', async () => {
    const target = await receiver();
    const chat = createChatWebhooksChannel({
      webhooks: {
        'it-ops': { format: 'slack', url: `${target.url}/services/T000/B000/XXXX` },
        board: { format: 'teams', url: `${target.url}/workflows/abc?sig=s3cr3t` },
        siem: { format: 'json', url: `${target.url}/siem`, secret: 'whsec-test' },
      },
      nowS: () => 1_764_000_000,
    });
    closers.push(() => chat.close());

    await chat.send(message('it-ops'), signal());
    await chat.send(message('board'), signal());
    const receipt = await chat.send(message('siem'), signal());

    const [slack, teams, json] = target.requests;
    expect(slack?.url).toBe('/services/T000/B000/XXXX');
    expect(slack?.headers['content-type']).toBe('application/json');
    expect(JSON.parse(slack?.body ?? '')).toEqual({
      text: 'Datenbank &lt;db-1&gt; down &amp; "wer" hilft?',
    });
    expect(teams?.url).toBe('/workflows/abc?sig=s3cr3t');
    expect(JSON.parse(teams?.body ?? '')).toEqual({
      type: 'message',
      attachments: [
        {
          contentType: 'application/vnd.microsoft.card.adaptive',
          content: {
            $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
            type: 'AdaptiveCard',
            version: '1.4',
            body: [{ type: 'TextBlock', text: 'Datenbank <db-1> down & "wer" hilft?', wrap: true }],
          },
        },
      ],
    });
    expect(JSON.parse(json?.body ?? '')).toEqual({
      id: 41,
      incidentId: 'inc_7',
      room: 'siem',
      text: 'Datenbank <db-1> down & "wer" hilft?',
    });
    expect(json?.headers['x-tocsin-timestamp']).toBe('1764000000');
    expect(
      checkWebhookSignature(
        'whsec-test',
        json?.body ?? '',
        json?.headers['x-tocsin-timestamp'] as string,
        json?.headers['x-tocsin-signature'] as string,
        1_764_000_010,
      ),
    ).toBe('valid');
    expect(receipt.providerId).toBe('siem:41');
  });

  it('signs as HMAC-SHA256 over timestamp.body, and rejects a tampered body, a wrong key and a replay', () => {
    const body = '{"text":"Datenbank down"}';
    // Computed with openssl: printf '1764000000.{"text":"Datenbank down"}' | openssl dgst -sha256 -hmac whsec-test
    const vector = 'v1=4e32fa34daa8285e53f7a9d687664797e8e4cbd0c6280561065a9d5746ec13fe';
    const now = 1_764_000_000;

    expect(webhookSignature('whsec-test', now, body)).toBe(vector);
    expect(checkWebhookSignature('whsec-test', body, String(now), vector, now + 299)).toBe('valid');
    expect(
      checkWebhookSignature('whsec-test', body.replace('down', 'up'), String(now), vector, now),
    ).toBe('mismatch');
    expect(checkWebhookSignature('other-key', body, String(now), vector, now)).toBe('mismatch');
    expect(checkWebhookSignature('whsec-test', body, String(now), vector, now + 301)).toBe('stale');
    // The same body re-signed with a new time does not pass with the old signature.
    expect(checkWebhookSignature('whsec-test', body, String(now + 60), vector, now + 60)).toBe(
      'mismatch',
    );
    expect(checkWebhookSignature('whsec-test', body, undefined, vector, now)).toBe('missing');
  });

  it('classifies answers: a gone room for the recipient, a throttle with its wait, a 500 as maybe taken', async () => {
    let reply: { status: number; body?: string; headers?: Record<string, string> } = {
      status: 404,
      body: 'channel_not_found',
    };
    const target = await receiver(() => reply);
    const chat = createChatWebhooksChannel({
      webhooks: { room: { format: 'slack', url: `${target.url}/hook` } },
    });
    closers.push(() => chat.close());
    const failure = async (): Promise<ChannelError> => {
      try {
        await chat.send(message('room'), signal());
      } catch (error) {
        if (error instanceof ChannelError) return error;
      }
      throw new Error('no channel error');
    };

    const gone = await failure();
    reply = { status: 429, body: 'rate_limited', headers: { 'retry-after': '30' } };
    const throttled = await failure();
    reply = { status: 500, body: '' };
    const broken = await failure();
    const unknownRoom = await chat
      .send(message('nowhere'), signal())
      .catch((error: unknown) => error);

    expect([gone.retryable, gone.scope, gone.providerCode]).toEqual([
      false,
      'recipient',
      'channel_not_found',
    ]);
    expect([throttled.retryable, throttled.retryAfterMs]).toEqual([true, 30_000]);
    expect([broken.retryable, broken.ambiguous]).toEqual([true, true]);
    expect(unknownRoom).toMatchObject({ code: 'E_CHANNEL_NOT_CONFIGURED' });
  });
});

describe('a chat room in a playbook', () => {
  let service: Service | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await service?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('reaches the sandbox rooms of each format from a directory entry with chat:', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'tocsin-chat-'));
    writeFileSync(
      path.join(dir, 'chat.yaml'),
      `apiVersion: tocsin/v1
kind: Playbook
metadata: { name: chat, version: 1 }
triggers: [{ source: manual }]
audiences:
  rooms: { select: { groups: [rooms] }, channels: [chat] }
  oncall: { select: { roles: [oncall] }, channels: [sms] }
stages:
  - { id: page, after: 0m, audiences: [rooms, oncall] }
messages:
  page:
    rooms: { chat: 'Incident {{ incident.id }} opened; on-call paged' }
    oncall: { sms: 'Page' }
`,
    );
    writeFileSync(
      path.join(dir, 'directory.yaml'),
      `apiVersion: tocsin/v1
kind: Directory
people:
  - { id: it-ops-room, name: IT Ops channel, chat: it-ops, groups: [rooms] }
  - { id: board-room, name: Management team, chat: management, groups: [rooms] }
  - { id: siem, name: SIEM, chat: siem, groups: [rooms] }
  - { id: ada, name: Ada, phone: '+12025550101', roles: [oncall] }
`,
    );
    const config = await loadServiceConfig(undefined, { TOCSIN_TOKEN: 'chat-token' });
    config.database = path.join(dir, 'tocsin.db');
    config.playbooks = [path.join(dir, 'chat.yaml')];
    config.directory = path.join(dir, 'directory.yaml');
    config.server.port = 0;
    service = await startService(config, createLogger({ level: 'silent' }));

    const incident = service.engine.declare({ playbook: 'chat', variables: {}, by: 'test' });
    const store = service.store;
    await expect
      .poll(() => store.listMessages(incident.id).filter((row) => row.status === 'accepted').length)
      .toBe(4);

    const received = service.sandbox?.recorder.list() ?? [];
    expect(
      received
        .filter((entry) => entry.channel === 'chat')
        .map((entry) => [entry.provider, entry.to, entry.body])
        .sort(),
    ).toEqual([
      ['chat-json', 'siem', `Incident ${incident.id} opened; on-call paged`],
      ['chat-slack', 'it-ops', `Incident ${incident.id} opened; on-call paged`],
      ['chat-teams', 'management', `Incident ${incident.id} opened; on-call paged`],
    ]);
  });
});
