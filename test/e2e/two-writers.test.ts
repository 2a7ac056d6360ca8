import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import type { ReceivedMessage, SandboxInfo, TocsinProcess } from './processes.js';
import {
  listReceived,
  ROOT,
  startSandboxProcess,
  startServe,
  waitFor,
  writeServeConfig,
} from './processes.js';

const TOKEN = 'two-writers-token-3c1f';
const ENV = { TOCSIN_TOKEN: TOKEN, TWILIO_AUTH_TOKEN: 'sandbox-auth-token' };
const firing = readFileSync(
  path.join(ROOT, 'test/fixtures/webhooks/alertmanager-firing.json'),
  'utf8',
);

describe('two tocsin serve processes on one database', () => {
  const cleanups: (() => Promise<void>)[] = [];

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function serve(config: string): Promise<{ process: TocsinProcess; url: string }> {
    const started = await startServe(config, ENV);
    cleanups.push(() => started.process.stop());
    return started;
  }

  it('sends each message once: one writes, the other waits and takes over when it dies', async () => {
    const sandbox = await startSandboxProcess();
    cleanups.push(() => sandbox.process.stop());
    const { dir, config } = writeServeConfig(
      sandbox.info,
      'test/fixtures/playbooks/e2e-escalation.yaml',
      ['lease: { ttl: 2s }'],
    );
    cleanups.push(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));

    const first = await serve(config);
    const second = await serve(config);
    expect(await health(first.url)).toEqual({ status: 'ok', role: 'active' });
    expect(await health(second.url)).toEqual({ status: 'ok', role: 'standby' });

    // The standby turns work away, naming the reason, so nothing is decided twice.
    const refused = await post(second.url, '/hooks/alertmanager', firing);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('5');
    expect(((await refused.json()) as { error: string }).error).toContain('standby');

    // Both alive: the active one starts the incident and sends the first stage, once.
    const started = (await (await post(first.url, '/hooks/alertmanager', firing)).json()) as {
      incidents: { incidentId: string }[];
    };
    const incidentId = started.incidents[0]?.incidentId ?? '';
    await waitFor(
      async () => ((await about(sandbox.info, incidentId)).length === 2 ? true : undefined),
      5_000,
      'first stage',
    );

    // The active one dies before the escalation (due at +3s); the standby takes over and sends
    // it, once per recipient.
    await first.process.stop('SIGKILL');
    await waitFor(
      async () => ((await health(second.url)).role === 'active' ? true : undefined),
      5_000,
      'the standby to take over',
    );
    await waitFor(
      async () => ((await about(sandbox.info, incidentId)).length === 4 ? true : undefined),
      8_000,
      'the escalation from the second process',
    );
    await new Promise((resolve) => setTimeout(resolve, 500));

    const received = await about(sandbox.info, incidentId);
    const keys = received.map((message) => `${message.channel} ${message.to} ${message.body}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(received.filter((m) => m.subject?.startsWith('Unacknowledged'))).toHaveLength(2);
    expect(second.process.lines.join('\n')).toContain('writer lease taken');
  });

  it('stops a process whose lease another one took, before it writes again', async () => {
    const sandbox = await startSandboxProcess();
    cleanups.push(() => sandbox.process.stop());
    const { dir, config } = writeServeConfig(
      sandbox.info,
      'test/fixtures/playbooks/e2e-escalation.yaml',
      ['lease: { ttl: 2s }'],
    );
    cleanups.push(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
    const first = await serve(config);

    // Freeze the active process past its lease; a second one takes the lease meanwhile.
    first.process.child.kill('SIGSTOP');
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const second = await serve(config);
    await waitFor(
      async () => ((await health(second.url)).role === 'active' ? true : undefined),
      5_000,
      'the second process to take the lease',
    );
    const exited = new Promise<number | null>((resolve) =>
      first.process.child.once('exit', (code) => resolve(code)),
    );
    first.process.child.kill('SIGCONT');

    expect(await exited).toBe(1);
    expect(first.process.lines.join('\n')).toContain('E_STORE_LEASE_LOST');
  });
});

async function health(url: string): Promise<{ status: string; role: string }> {
  return (await (await fetch(`${url}/healthz`)).json()) as { status: string; role: string };
}

function post(url: string, route: string, body: string): Promise<Response> {
  return fetch(`${url}${route}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body,
  });
}

async function about(sandbox: SandboxInfo, incidentId: string): Promise<ReceivedMessage[]> {
  return (await listReceived(sandbox)).filter((message) => message.body.includes(incidentId));
}
