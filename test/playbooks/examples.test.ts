import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { DateTime, Duration } from 'luxon';
import { describe, expect, it } from 'vitest';

import { simulate } from '../../runner/cli/simulate.js';
import { checkAudiences, loadDirectory, loadPlaybook } from '../../src/index.js';

// Examples are tests: every playbook in playbooks/ loads clean, fits the example directory, and
// plays through a simulation with its trigger.
const ROOT = path.resolve(import.meta.dirname, '..', '..');
const DIRECTORY = path.join(ROOT, 'examples/directory.yaml');
const TRIGGERS: Record<string, string> = {
  'instance-down': 'alertmanager-firing.json',
  'datacenter-outage': 'alertmanager-datacenter-firing.json',
  'service-degradation': 'alertmanager-service-degraded-firing.json',
  'data-breach': 'alertmanager-ransomware-firing.json',
};
const EXPECTED_TIMELINES: Record<string, string[]> = {
  'instance-down': ['+0m alert-oncall', '+15m escalate-management', '+15m all-clear'],
  'datacenter-outage': [
    '+0m alert-oncall',
    '+10m convene-crisis-team',
    '+20m inform-staff',
    '+30m crisis-update',
    '+1h crisis-update',
    '+1h30m all-clear',
  ],
  'service-degradation': ['+0m first-notice', '+30m update', '+1h update', '+1h30m resolved'],
  // Nobody approves the customer notice in this run: it is held, and the crisis team is told.
  'data-breach': [
    '+0m alert-security',
    '+0m convene-crisis-team',
    '+15m staff-notice',
    '+1h30m approval-overdue',
    '+1h30m all-clear',
  ],
};
const files = readdirSync(path.join(ROOT, 'playbooks')).filter((name) => name.endsWith('.yaml'));
const SCHEMA = path.join(ROOT, 'schemas/playbook.schema.json');
const FIXTURES = 'test/fixtures/playbooks';

describe('example playbooks', () => {
  it('are at least three, each with a trigger and an expected timeline here', () => {
    const names = files.map((file) => file.replace(/\.yaml$/, '')).sort();

    expect(names.length).toBeGreaterThanOrEqual(3);
    expect(Object.keys(TRIGGERS).sort()).toEqual(names);
  });

  it.each(files)('%s loads clean and fits the example directory', async (file) => {
    const playbook = await loadPlaybook(path.join(ROOT, 'playbooks', file));
    const directory = await loadDirectory(DIRECTORY);

    expect(checkAudiences(playbook, directory)).toEqual([]);
  });

  it.each(files)('%s plays through a simulation', async (file) => {
    const name = file.replace(/\.yaml$/, '');

    const result = await simulate({
      playbookFile: path.join(ROOT, 'playbooks', file),
      triggerFile: path.join(ROOT, 'test/fixtures/webhooks', TRIGGERS[name] ?? ''),
      directoryFile: DIRECTORY,
      start: DateTime.fromISO('2026-12-03T09:00:00Z'),
      resolveAtEnd: true,
    });

    const fired = result.timeline.filter((entry) => entry.type === 'stage.fired');
    expect(fired.map((entry) => `${entry.offset} ${entry.stageId}`)).toEqual(
      EXPECTED_TIMELINES[name],
    );
    expect(fired.every((entry) => (entry.messages ?? []).length > 0)).toBe(true);
    expect(result.status).toBe('resolved');
  });

  it('sends the customer notice of the data-breach playbook only with two approvals', async () => {
    const result = await simulate({
      playbookFile: path.join(ROOT, 'playbooks/data-breach.yaml'),
      triggerFile: path.join(ROOT, 'test/fixtures/webhooks/alertmanager-ransomware-firing.json'),
      directoryFile: DIRECTORY,
      start: DateTime.fromISO('2026-12-03T09:00:00Z'),
      resolveAtEnd: true,
      resolveAfter: Duration.fromObject({ hours: 3 }),
      approveAfter: Duration.fromObject({ minutes: 10 }),
      approveBy: ['ilse', 'hana'],
    });

    const steps = result.timeline.map((entry) =>
      `${entry.offset} ${entry.type} ${entry.by ?? ''}`.trim(),
    );
    expect(steps).toContain('+30m approval.requested');
    expect(steps).toContain('+40m approval.received ilse');
    const notice = result.timeline.find(
      (entry) => entry.stageId === 'customer-notice' && entry.type === 'stage.fired',
    );
    expect(notice?.offset).toBe('+40m');
    expect(notice?.messages?.map((message) => message.personId)).toEqual(['jonas', 'kim']);
    expect(notice?.messages?.some((message) => message.body.includes('WS-1187'))).toBe(false);
  });

  it('tells people in their own language, and the others in the playbook locale', async () => {
    const result = await simulate({
      playbookFile: path.join(ROOT, 'playbooks/datacenter-outage.yaml'),
      triggerFile: path.join(ROOT, 'test/fixtures/webhooks/alertmanager-datacenter-firing.json'),
      directoryFile: DIRECTORY,
      start: DateTime.fromISO('2026-12-03T09:00:00Z'),
      resolveAtEnd: true,
    });

    const staff = result.timeline.find((entry) => entry.stageId === 'inform-staff')?.messages ?? [];
    const byPerson = Object.fromEntries(staff.map((message) => [message.personId, message.body]));
    expect(byPerson.gustav).toMatch(/^Störung im Rechenzentrum FRA-2/);
    expect(byPerson.ada).toMatch(/^Outage at data centre FRA-2/);
    expect(staff.every((message) => message.channel === 'sms')).toBe(true);
  });
});

// Editors (the YAML language server) find the schema through a playbook's first line.
describe('schema lines', () => {
  it.each(files)('playbooks/%s opens with a schema line that finds the playbook schema', (file) => {
    const target = schemaOnFirstLine(`playbooks/${file}`);

    expect(existsSync(SCHEMA)).toBe(true);
    expect(target).toBe(SCHEMA);
  });

  it('gives every fixture playbook that names the schema a path that finds it', () => {
    const named = readdirSync(path.join(ROOT, FIXTURES))
      .filter((name) => name.endsWith('.yaml'))
      .map((name) => `${FIXTURES}/${name}`)
      .filter((file) => readFileSync(path.join(ROOT, file), 'utf8').includes('$schema='));

    const wrong = named.filter((file) => schemaOnFirstLine(file) !== SCHEMA);

    expect(named.length).toBeGreaterThan(0);
    expect(wrong).toEqual([]);
  });
});

/** The file a `# yaml-language-server: $schema=<path>` first line points at, resolved. */
function schemaOnFirstLine(file: string): string | undefined {
  const firstLine = readFileSync(path.join(ROOT, file), 'utf8').split('\n')[0] ?? '';
  const target = /^# yaml-language-server: \$schema=(\S+)$/.exec(firstLine)?.[1];
  return target === undefined ? undefined : path.resolve(ROOT, path.dirname(file), target);
}
