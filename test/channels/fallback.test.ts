import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { loadServiceConfig } from '../../runner/config.js';
import { createLogger } from '../../runner/logger.js';
import { UNDELIVERABLE_NUMBER } from '../../runner/sandbox/twilio-stand-in.js';
import { startService } from '../../runner/service.js';
import type { Service } from '../../runner/service.js';

const PLAYBOOK = `apiVersion: tocsin/v1
kind: Playbook
metadata: { name: fallback, version: 1 }
triggers: [{ source: manual }]
audiences:
  staff: { select: { roles: [staff] }, channels: [sms, email] }
stages:
  - { id: page, after: 0m, audiences: [staff] }
messages:
  page: { staff: { sms: 'Page {{ recipient.id }}', email: { subject: Page, text: 'Page {{ recipient.id }}' } } }
`;

const DIRECTORY = `apiVersion: tocsin/v1
kind: Directory
people:
  - { id: ada, name: Ada, phone: '+12025550101', email: ada@example.com, roles: [staff] }
  - { id: ivan, name: Ivan, phone: '+15005550001', email: ivan@example.com, roles: [staff] }
  - { id: una, name: Una, phone: '${UNDELIVERABLE_NUMBER}', email: una@example.com, roles: [staff] }
  - { id: olga, name: Olga, phone: '+15005550004', roles: [staff] }
`;

describe('per-recipient fallback', () => {
  let service: Service | undefined;
  let dir: string | undefined;

  afterEach(async () => {
    await service?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('tries the next channel when the provider rejects a number or reports it undelivered', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'tocsin-fallback-'));
    writeFileSync(path.join(dir, 'fallback.yaml'), PLAYBOOK);
    writeFileSync(path.join(dir, 'directory.yaml'), DIRECTORY);
    const config = await loadServiceConfig(undefined, { TOCSIN_TOKEN: 'fallback-token' });
    config.database = path.join(dir, 'tocsin.db');
    config.playbooks = [path.join(dir, 'fallback.yaml')];
    config.directory = path.join(dir, 'directory.yaml');
    config.server.port = 0;
    service = await startService(config, createLogger({ level: 'silent' }));

    const incident = service.engine.declare({ playbook: 'fallback', variables: {}, by: 'test' });
    const store = service.store;
    const describe = (): string[] =>
      store
        .listMessages(incident.id)
        .map((row) => `${row.personId}:${row.channel}:${row.status}:${row.errorCode ?? ''}`);
    // Settled: the two fallbacks decided, nothing left to send, every receipt in.
    const settled = async (): Promise<string[]> => {
      for (let round = 0; round < 100; round++) {
        const rows = describe();
        if (rows.length === 6 && !rows.some((row) => /:(decided|sending):|sms:accepted/.test(row)))
          return rows;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return describe();
    };

    expect((await settled()).sort()).toEqual([
      'ada:sms:delivered:',
      'ivan:email:accepted:',
      'ivan:sms:failed:21211',
      'olga:sms:failed:21610',
      'una:email:accepted:',
      'una:sms:failed:30003',
    ]);
    const fallbacks = store
      .listAudit(incident.id)
      .filter((entry) => entry.type.startsWith('message.') && entry.type.includes('fallback'))
      .map((entry) => `${entry.type}:${String(entry.data.personId)}:${String(entry.data.to)}`)
      .sort();
    expect(fallbacks).toEqual([
      'message.fallback:ivan:email',
      'message.fallback:una:email',
      'message.no-fallback:olga:null',
    ]);
    // Olga's provider said she unsubscribed: the ledger keeps it for the next stages.
    expect([...store.listOptOuts()]).toEqual(['olga\u0000sms']);
  });
});
