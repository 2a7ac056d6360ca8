import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const run = promisify(execFile);
const FIRING = 'test/fixtures/webhooks/alertmanager-firing.json';

async function tocsin(
  ...args: string[]
): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['bin/tocsin.js', ...args], {
      cwd: ROOT,
    });
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const failed = error as { stdout: string; stderr: string; code: number };
    return { stdout: failed.stdout, stderr: failed.stderr, code: failed.code };
  }
}

interface Simulation {
  status: string;
  timeline: {
    offset: string;
    type: string;
    stageId?: string;
    messages?: { channel: string; status: string; body: string }[];
  }[];
  totals: { messages: number; byChannel: Record<string, number> };
}

describe('tocsin simulate', () => {
  it('prints the whole timeline of the example playbook and sends nothing', async () => {
    const { stdout, code } = await tocsin(
      'simulate',
      'playbooks/instance-down.yaml',
      '--trigger',
      FIRING,
      '--start',
      '2026-12-03T09:00:00Z',
    );

    expect(code).toBe(0);
    expect(stdout).toMatch(/\+0m\s+stage\.fired alert-oncall \(2 messages\)/);
    expect(stdout).toMatch(/\+15m\s+stage\.fired escalate-management \(2 messages\)/);
    expect(stdout).toMatch(/\+15m\s+stage\.fired all-clear \(4 messages\)/);
    expect(stdout).toContain('[CRITICAL] Instance localhost:8081 down (node).');
    expect(stdout).toContain('8 messages (4 sms, 4 email); incident resolved. Nothing was sent.');
  });

  it('gives the same timeline as JSON, every message only decided', async () => {
    const { stdout } = await tocsin(
      'simulate',
      'playbooks/instance-down.yaml',
      '--trigger',
      FIRING,
      '--format',
      'json',
    );
    const result = JSON.parse(stdout) as Simulation;

    const fired = result.timeline.filter((entry) => entry.type === 'stage.fired');
    expect(fired.map((entry) => `${entry.offset} ${entry.stageId}`)).toEqual([
      '+0m alert-oncall',
      '+15m escalate-management',
      '+15m all-clear',
    ]);
    const statuses = new Set(
      fired.flatMap((entry) => entry.messages ?? []).map((message) => message.status),
    );
    expect([...statuses]).toEqual(['decided']);
    expect(result.totals).toEqual({ messages: 8, byChannel: { sms: 4, email: 4 } });
  });

  it('skips the escalation when someone acknowledges in time', async () => {
    const { stdout } = await tocsin(
      'simulate',
      'playbooks/instance-down.yaml',
      '--trigger',
      FIRING,
      '--ack-after',
      '5m',
      '--ack-by',
      'ada',
      '--resolve-after',
      '1h',
      '--format',
      'json',
    );
    const result = JSON.parse(stdout) as Simulation;

    expect(
      result.timeline.map((entry) => `${entry.offset} ${entry.type} ${entry.stageId ?? ''}`.trim()),
    ).toEqual([
      '+0m incident.started',
      '+0m stage.fired alert-oncall',
      '+5m ack.received',
      '+5m stage.skipped escalate-management',
      '+1h alert.resolved',
      '+1h stage.fired all-clear',
    ]);
  });

  it('rejects a bad duration flag with exit code 2', async () => {
    const { code, stderr } = await tocsin(
      'simulate',
      'playbooks/instance-down.yaml',
      '--trigger',
      FIRING,
      '--ack-after',
      'soon',
    );

    expect(code).toBe(2);
    expect(stderr).toContain('"soon" is not a duration');
  });

  it('names the trigger file when it is not JSON', async () => {
    const { code, stderr } = await tocsin(
      'simulate',
      'playbooks/instance-down.yaml',
      '--trigger',
      'README.md',
    );

    expect(code).toBe(1);
    expect(stderr).toContain('README.md is not valid JSON');
  });
});
