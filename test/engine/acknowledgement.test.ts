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

describe('acknowledgement timeout', () => {
  const playbook = parsePlaybook(
    `apiVersion: tocsin/v1
kind: Playbook
metadata: { name: ack-timeout, version: 1 }
triggers: [{ source: alertmanager }]
audiences:
  oncall: { select: { roles: [oncall] }, channels: [sms] }
  managers: { select: { groups: [it-management] }, channels: [email] }
stages:
  - { id: page, after: 0m, ackTimeout: 10m, audiences: [oncall] }
  - { id: reminder, on: ack-timed-out, audiences: [oncall] }
  - { id: escalate, after: 15m, unless: acknowledged, audiences: [managers] }
messages:
  page: { oncall: { sms: 'Acknowledge by {{ stage.ackBy }}' } }
  reminder: { oncall: { sms: 'Nobody has acknowledged yet' } }
  escalate: { managers: { email: { subject: Escalation, text: Nobody answered. } } }
`,
    'ack-timeout.yaml',
  );

  function start(): {
    engine: ReturnType<typeof createEngine>;
    store: IncidentStore;
    clock: ManualClock;
    id: string;
  } {
    const store = new IncidentStore(':memory:');
    const clock = new ManualClock(START);
    const engine = createEngine({ store, clock, directory });
    engine.loadPlaybooks([playbook]);
    engine.start();
    const id = engine.startIncident({
      playbook: 'ack-timeout',
      variables: {},
      createdBy: 'test',
    }).id;
    return { engine, store, clock, id };
  }

  const sent = (store: IncidentStore, id: string, stageId: string): string[] =>
    store
      .listMessages(id)
      .filter((message) => message.stageId === stageId)
      .map((message) => message.decidedAt);

  it('fires the ack-timed-out stages when the time passes unanswered, before the escalation', () => {
    const { store, clock, id } = start();

    expect(store.listMessages(id).find((m) => m.stageId === 'page')?.body).toBe(
      'Acknowledge by 2026-12-03T09:10:00.000Z',
    );
    clock.advanceTo(START.plus({ minutes: 9, seconds: 59 }));
    expect(sent(store, id, 'reminder')).toEqual([]);
    clock.advanceTo(START.plus({ minutes: 20 }));

    expect(sent(store, id, 'reminder')).toEqual([
      '2026-12-03T09:10:00.000Z',
      '2026-12-03T09:10:00.000Z',
      '2026-12-03T09:10:00.000Z',
    ]);
    expect(sent(store, id, 'escalate')).toHaveLength(1);
    store.close();
  });

  it('stops the clock when someone acknowledges in time', () => {
    const { engine, store, clock, id } = start();

    clock.advanceTo(START.plus({ minutes: 5 }));
    engine.acknowledge(id, 'bert', 'test');
    clock.advanceTo(START.plus({ minutes: 30 }));

    expect(sent(store, id, 'reminder')).toEqual([]);
    expect(sent(store, id, 'escalate')).toEqual([]);
    store.close();
  });
});

describe('acknowledgement timeouts in combination', () => {
  const withLegal = parseDirectory(
    `apiVersion: tocsin/v1
kind: Directory
people:
  - { id: ada, name: Ada, phone: '+12025550101', roles: [oncall] }
  - { id: dora, name: Dora, email: dora@example.com, groups: [it-management] }
  - { id: ilse, name: Ilse, phone: '+12025550109', roles: [legal] }
`,
    'directory.yaml',
  );

  function run(stages: string, messages: string, acknowledgeAt?: number) {
    const playbook = parsePlaybook(
      `apiVersion: tocsin/v1
kind: Playbook
metadata: { name: combined, version: 1 }
triggers: [{ source: alertmanager }]
audiences:
  oncall: { select: { roles: [oncall] }, channels: [sms] }
  managers: { select: { groups: [it-management] }, channels: [email] }
stages:
${stages}
messages:
${messages}
`,
      'combined.yaml',
    );
    const store = new IncidentStore(':memory:');
    const clock = new ManualClock(START);
    const engine = createEngine({ store, clock, directory: withLegal });
    engine.loadPlaybooks([playbook]);
    engine.start();
    const id = engine.startIncident({ playbook: 'combined', variables: {}, createdBy: 'test' }).id;
    if (acknowledgeAt !== undefined) {
      clock.advanceTo(START.plus({ minutes: acknowledgeAt }));
      engine.acknowledge(id, 'ada', 'test');
    }
    clock.advanceTo(START.plus({ hours: 2 }));
    const fired = store
      .listMessages(id)
      .map((m) => `${m.stageId}#${m.occurrence}@${m.decidedAt.slice(11, 16)}`);
    const timers = store.listTimers(id).map((timer) => timer.timerId);
    store.close();
    return { fired, timers };
  }

  const pageAndNudge = `  page: { oncall: { sms: Page } }
  page2: { oncall: { sms: Page again } }
  nudge: { managers: { email: { subject: Nudge, text: Nobody answered. } } }`;

  it('fires the timed-out stage once per missed deadline, each its own occurrence', () => {
    const { fired, timers } = run(
      `  - { id: page, after: 0m, ackTimeout: 10m, audiences: [oncall] }
  - { id: page2, after: 2m, ackTimeout: 10m, audiences: [oncall] }
  - { id: nudge, on: ack-timed-out, audiences: [managers] }`,
      pageAndNudge,
    );

    expect(fired).toEqual(['page#1@09:00', 'page2#1@09:02', 'nudge#1@09:10', 'nudge#2@09:12']);
    expect(timers).toEqual([]);
  });

  it('counts the time to answer from the first page of a repeating stage', () => {
    const { fired } = run(
      `  - { id: page, after: 0m, every: 5m, until: acknowledged, ackTimeout: 10m, audiences: [oncall] }
  - { id: nudge, on: ack-timed-out, audiences: [managers] }`,
      pageAndNudge.replace(/^ {2}page2.*\n/m, ''),
      12,
    );

    expect(fired).toEqual([
      'page#1@09:00',
      'page#2@09:05',
      'nudge#1@09:10',
      'page#3@09:10',
      // The next deadline runs from page #3; the acknowledgement at 09:12 stops it and the pages.
    ]);
  });

  it('skips an escalation that waits for its approval when someone acknowledges', () => {
    const { fired, timers } = run(
      `  - { id: page, after: 0m, audiences: [oncall] }
  - id: escalate
    after: 5m
    unless: acknowledged
    approval: { roles: [legal], timeout: 30m, onTimeout: send }
    audiences: [managers]`,
      `  page: { oncall: { sms: Page } }
  escalate: { managers: { email: { subject: Escalation, text: Nobody answered. } } }`,
      10,
    );

    expect(fired.filter((entry) => entry.startsWith('escalate'))).toEqual([]);
    expect(timers).toEqual([]);
  });
});
