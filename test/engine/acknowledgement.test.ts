import { DateTime } from 'luxon';
import { describe, expect, it } from 'vitest';

import {
  createEngine,
  IncidentStore,
  ManualClock,
  parseDirectory,
  parsePlaybook,
} from '../../src/index.js';

const START = DateTime.fromISO('2026-12-03T09:00:00Z');

const directory = parseDirectory(
  `apiVersion: tocsin/v1
kind: Directory
people:
  - { id: ada, name: Ada, phone: '+12025550101', roles: [oncall] }
  - { id: bert, name: Bert, phone: '+12025550102', roles: [oncall] }
  - { id: cleo, name: Cleo, phone: '+12025550103', roles: [oncall] }
  - { id: dora, name: Dora, email: dora@example.com, groups: [it-management] }
`,
  'directory.yaml',
);

function run(rule: string, acks: string[]): { escalated: boolean; acknowledgedBy: string | null } {
  const playbook = parsePlaybook(
    `apiVersion: tocsin/v1
kind: Playbook
metadata: { name: acks, version: 1 }
triggers: [{ source: alertmanager }]
acknowledgement: ${rule}
audiences:
  oncall: { select: { roles: [oncall] }, channels: [sms] }
  managers: { select: { groups: [it-management] }, channels: [email] }
stages:
  - { id: page, after: 0m, audiences: [oncall] }
  - { id: escalate, after: 15m, unless: acknowledged, audiences: [managers] }
messages:
  page: { oncall: { sms: Page } }
  escalate: { managers: { email: { subject: Escalation, text: Nobody answered. } } }
`,
    'acks.yaml',
  );
  const store = new IncidentStore(':memory:');
  const clock = new ManualClock(START);
  const engine = createEngine({ store, clock, directory });
  engine.loadPlaybooks([playbook]);
  engine.start();
  const id = engine.startIncident({ playbook: 'acks', variables: {}, createdBy: 'test' }).id;

  clock.advanceTo(START.plus({ minutes: 5 }));
  for (const by of acks) engine.acknowledge(id, by, 'test');
  clock.advanceTo(START.plus({ minutes: 20 }));

  const escalated = store.listMessages(id).some((message) => message.stageId === 'escalate');
  const context = (
    store.getIncident(id)?.snapshot as { context: { acknowledgedBy: string | null } }
  ).context;
  store.close();
  return { escalated, acknowledgedBy: context.acknowledgedBy };
}

describe('acknowledgement modes', () => {
  it('counts the first acknowledgement by default', () => {
    expect(run('{ mode: first }', ['bert'])).toEqual({ escalated: false, acknowledgedBy: 'bert' });
  });

  it('needs N different people for a quorum, counting a repeat once', () => {
    expect(run('{ mode: quorum, quorum: 2, audience: oncall }', ['ada', 'ada'])).toEqual({
      escalated: true,
      acknowledgedBy: null,
    });
    expect(run('{ mode: quorum, quorum: 2, audience: oncall }', ['ada', 'cleo'])).toEqual({
      escalated: false,
      acknowledgedBy: 'cleo',
    });
  });

  it('needs everyone in the audience for mode all', () => {
    expect(run('{ mode: all, audience: oncall }', ['ada', 'bert']).escalated).toBe(true);
    expect(run('{ mode: all, audience: oncall }', ['ada', 'bert', 'cleo']).escalated).toBe(false);
  });

  it('ignores acknowledgements from people outside the counted audience', () => {
    expect(run('{ mode: first, audience: oncall }', ['dora'])).toEqual({
      escalated: true,
      acknowledgedBy: null,
    });
  });
});
