import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';

import { afterEach, describe, expect, it } from 'vitest';

import { twilioSignature } from '../../src/index.js';
import { loadServiceConfig, SANDBOX_CREDENTIALS } from '../../runner/config.js';
import { createLogger } from '../../runner/logger.js';
import { startService } from '../../runner/service.js';
import type { Service } from '../../runner/service.js';

const PLAYBOOK = `apiVersion: tocsin/v1
kind: Playbook
metadata: { name: whole, version: 1 }
triggers: [{ source: manual }]
variables:
  summary: { type: string, sensitivity: internal }
audiences:
  chat: { select: { roles: [staff] }, channels: [whatsapp, sms] }
  mail: { select: { roles: [staff] }, channels: [sms, email] }
stages:
  - { id: page, after: 0m, audiences: [chat, mail] }
  - { id: all-clear, on: resolved, audiences: [mail] }
messages:
  page:
    chat:
      whatsapp: { text: 'SECRET-BODY-1 {{ vars.summary }} {{ incident.code }}', template: { name: incident_page, language: en, parameters: ['{{ vars.summary }}'] } }
      sms: 'SECRET-BODY-2 {{ vars.summary }}'
    mail:
      sms: 'SECRET-BODY-3 {{ vars.summary }}'
      email: { subject: 'SECRET-SUBJECT', text: 'SECRET-BODY-4 {{ vars.summary }}' }
  all-clear:
    mail:
      sms: 'SECRET-BODY-5'
      email: { subject: 'SECRET-SUBJECT-2', text: 'SECRET-BODY-6' }
`;

// Each with a way to be told, and one whose number the provider rejects (falls back to email).
const DIRECTORY = `apiVersion: tocsin/v1
kind: Directory
people:
  - { id: ada, name: Ada Quill, phone: '+12025550101', email: ada.quill@example.com, roles: [staff] }
  - { id: ivan, name: Ivan Rejected, phone: '+15005550001', email: ivan.r@example.com, roles: [staff] }
  - { id: una, name: Una Undelivered, phone: '+15005550003', email: una.u@example.com, roles: [staff] }
`;

describe('the log of a whole incident', () => {
  let service: Service | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await service?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('has no phone number, address, token, secret, variable value or message body in any line', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'tocsin-logs-'));
    writeFileSync(path.join(dir, 'whole.yaml'), PLAYBOOK);
    writeFileSync(path.join(dir, 'directory.yaml'), DIRECTORY);
    const config = await loadServiceConfig(undefined, { TOCSIN_TOKEN: 'api-token-0123456789' });
    config.database = path.join(dir, 'tocsin.db');
    config.playbooks = [path.join(dir, 'whole.yaml')];
    config.directory = path.join(dir, 'directory.yaml');
    config.server.port = 0;
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        done();
      },
    });
    service = await startService(config, createLogger({ level: 'debug', destination }));
    const { engine, store } = service;
    const url = service.url;

    const incident = engine.declare({
      playbook: 'whole',
      variables: { summary: 'VARIABLE-VALUE-7 +4915112345678 boss@corp.example' },
      by: 'ada',
    });
    const settled = async (): Promise<void> => {
      for (let round = 0; round < 100; round++) {
        const rows = store.listMessages(incident.id);
        if (!rows.some((row) => ['decided', 'sending'].includes(row.status))) return;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    await settled();

    // Replies: a WhatsApp user writes, an SMS reply acknowledges, another says STOP.
    const whatsappInbound = `${service.sandbox?.httpUrl ?? ''}/sandbox/whatsapp/inbound`;
    await fetch(whatsappInbound, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ from: '+12025550101', text: 'hello SECRET-REPLY-1' }),
    });
    const inbound = `${url}/providers/twilio/inbound`;
    for (const [from, body] of [
      ['+12025550101', `ACK ${incident.replyCode ?? ''} SECRET-REPLY-2`],
      ['+15005550003', 'STOP'],
      ['+19995550000', 'who is this SECRET-REPLY-3'],
    ] as const) {
      const params = { From: from, To: SANDBOX_CREDENTIALS.from, Body: body, MessageSid: 'SM1' };
      await fetch(inbound, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'x-twilio-signature': twilioSignature(SANDBOX_CREDENTIALS.authToken, inbound, params),
        },
        body: new URLSearchParams(params).toString(),
      });
    }
    engine.resolve(incident.id, 'ada');
    await settled();
    await new Promise((resolve) => setTimeout(resolve, 300));

    const log = lines.join('\n');
    const kinds = new Set(lines.map((line) => (JSON.parse(line) as { msg: string }).msg));
    // The log did see the whole incident: sends, a fallback, receipts, replies.
    for (const expected of [
      'stage fired',
      'falling back to the next channel',
      'reply',
      'delivery receipt',
    ])
      expect(kinds).toContain(expected);
    expect(log).not.toMatch(/\+\d{7,}|\b1\d{10}\b/);
    expect(log).not.toMatch(/[a-z.]+@[a-z.]*example/);
    expect(log).not.toMatch(/SECRET-|VARIABLE-VALUE|boss@/);
    for (const secret of [
      'api-token-0123456789',
      SANDBOX_CREDENTIALS.authToken,
      SANDBOX_CREDENTIALS.whatsappAccessToken,
      SANDBOX_CREDENTIALS.whatsappAppSecret,
    ])
      expect(log).not.toContain(secret);
  });
});
