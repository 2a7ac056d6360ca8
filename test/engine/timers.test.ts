import { DateTime } from 'luxon';
import { beforeEach, describe, expect, it } from 'vitest';

import {
  createEngine,
  IncidentStore,
  ManualClock,
  parseDirectory,
  parsePlaybook,
} from '../../src/index.js';
import type { AuditRecord, Engine } from '../../src/index.js';

const START = DateTime.fromISO('2026-12-03T09:00:00Z');

// Every kind of stored timer: an acknowledgement timeout (ack:page, +10m), a stage
// (stage:escalate, +15m), a repeat (stage:update, +20m, then every 30m) and an approval timeout
// (approval:notice, 20m after the notice is due at +5m, so +25m).
const playbook = parsePlaybook(
  `apiVersion: tocsin/v1
kind: Playbook
metadata: { name: timers, version: 1 }
triggers: [{ source: alertmanager }]
audiences:
  oncall: { select: { roles: [oncall] }, channels: [sms] }
  managers: { select: { groups: [it-management] }, channels: [email] }
  customers: { select: { tags: [customer] }, channels: [email] }
stages:
  - { id: page, after: 0m, ackTimeout: 10m, audiences: [oncall] }
  - { id: reminder, on: ack-timed-out, audiences: [oncall] }
  - id: notice
    after: 5m
    audiences: [customers]
    approval: { roles: [legal], timeout: 20m, onTimeout: escalate }
  - { id: approval-overdue, on: approval-timed-out, audiences: [managers] }
  - { id: escalate, after: 15m, unless: acknowledged, audiences: [managers] }
  - { id: update, after: 20m, every: 30m, until: resolved, audiences: [managers] }
  - { id: all-clear, on: resolved, audiences: [oncall] }
  - { id: retraction, on: cancelled, audiences: [oncall] }
messages:
  page: { oncall: { sms: Page } }
  reminder: { oncall: { sms: Nobody has acknowledged yet } }
  notice: { customers: { email: { subject: Notice, text: We are working on it. } } }
  approval-overdue: { managers: { email: { subject: Overdue, text: The notice waits. } } }
  escalate: { managers: { email: { subject: Escalation, text: Nobody answered. } } }
  update: { managers: { email: { subject: Update, text: Still open. } } }
  all-clear: { oncall: { sms: Resolved } }
  retraction: { oncall: { sms: Cancelled; please ignore } }
`,
  'timers.yaml',
);

const directory = parseDirectory(
  `apiVersion: tocsin/v1
kind: Directory
people:
  - { id: ada, name: Ada, phone: '+12025550101', roles: [oncall] }
  - { id: bert, name: Bert, phone: '+12025550102', roles: [oncall] }
  - { id: dora, name: Dora, email: dora@example.com, groups: [it-management] }
  - { id: ilse, name: Ilse, phone: '+12025550109', roles: [legal] }
  - { id: kim, name: Kim, email: kim@example.com, tags: [customer] }
`,
  'directory.yaml',
);

describe('stored timers', () => {
  let store: IncidentStore;
  let clock: ManualClock;
  let engine: Engine;

  beforeEach(() => {
    store = new IncidentStore(':memory:');
    clock = new ManualClock(START);
    engine = startEngine();
  });

  function startEngine(): Engine {
    const created = createEngine({ store, clock, directory });
    created.loadPlaybooks([playbook]);
    created.restore();
    created.start();
    return created;
  }

  function startIncident(): string {
    return engine.startIncident({ playbook: 'timers', variables: {}, createdBy: 'test' }).id;
  }

  /** Audit entries of these incidents in the order they were written. */
  function auditOf(ids: readonly string[], type: string): AuditRecord[] {
    return ids
      .flatMap((id) => store.listAudit(id))
      .filter((entry) => entry.type === type)
      .sort((a, b) => a.seq - b.seq);
  }

  const timerIds = (id: string): string[] =>
    store
      .listTimers(id)
      .map((timer) => timer.timerId)
      .sort();

  it('fires overdue timers of several incidents once each, earliest deadline first, at start-up', () => {
    const first = startIncident();
    clock.advanceTo(START.plus({ minutes: 2 }));
    const second = startIncident();
    clock.advanceTo(START.plus({ minutes: 8 }));
    const pending = ['ack:page', 'approval:notice', 'stage:escalate', 'stage:update'];
    expect(timerIds(first)).toEqual(pending);
    expect(timerIds(second)).toEqual(pending);
    const label = (id: string): string => (id === first ? 'A' : 'B');

    // Down from +8m to +1h: every one of the eight timers passes its deadline meanwhile.
    engine.stop();
    const firedBefore = auditOf([first, second], 'timer.fired').length;
    const messagesBefore = [first, second].flatMap((id) => store.listMessages(id)).length;
    clock.advanceTo(START.plus({ hours: 1 }));
    expect(auditOf([first, second], 'timer.fired')).toHaveLength(firedBefore);
    engine = startEngine();

    const fired = auditOf([first, second], 'timer.fired')
      .slice(firedBefore)
      .map((entry) => `${label(entry.incidentId ?? '')} ${String(entry.data.timerId)}`);
    expect(fired).toEqual([
      'A ack:page',
      'B ack:page',
      'A stage:escalate',
      'B stage:escalate',
      'A stage:update',
      'B stage:update',
      'A approval:notice',
      'B approval:notice',
    ]);

    // The messages are decided in the same order, each stage once per person.
    const decided = [first, second]
      .flatMap((id) => store.listMessages(id))
      .sort((a, b) => a.id - b.id)
      .slice(messagesBefore)
      .map((message) => `${label(message.incidentId)} ${message.stageId}:${message.personId}`);
    expect(decided).toEqual([
      'A reminder:ada',
      'A reminder:bert',
      'B reminder:ada',
      'B reminder:bert',
      'A escalate:dora',
      'B escalate:dora',
      'A update:dora',
      'B update:dora',
      'A approval-overdue:dora',
      'B approval-overdue:dora',
    ]);

    // The missed repeat is not made up in a burst; only the next one is left, and nothing fires
    // again on a second look or a second restart.
    expect(store.listTimers(first).map((timer) => [timer.timerId, timer.dueAt])).toEqual([
      ['stage:update', '2026-12-03T10:20:00.000Z'],
    ]);
    expect(store.listTimers(second).map((timer) => [timer.timerId, timer.dueAt])).toEqual([
      ['stage:update', '2026-12-03T10:22:00.000Z'],
    ]);
    expect(engine.fireDueTimers()).toBe(0);
    engine.stop();
    engine = startEngine();
    clock.advanceTo(START.plus({ minutes: 79 }));
    expect(auditOf([first, second], 'timer.fired')).toHaveLength(firedBefore + 8);
  });

  it.each(['resolve', 'cancel'] as const)(
    'drops acknowledgement, approval and stage timers alike on %s',
    (action) => {
      const id = startIncident();
      clock.advanceTo(START.plus({ minutes: 6 }));
      expect(timerIds(id)).toEqual([
        'ack:page',
        'approval:notice',
        'stage:escalate',
        'stage:update',
      ]);
      const before = store.listMessages(id).length;

      if (action === 'resolve') engine.resolve(id, 'ada');
      else engine.cancel(id, 'ada');

      expect(store.listTimers(id)).toEqual([]);
      const context = (
        store.getIncident(id)?.snapshot as { context: { timers: unknown[]; pending: unknown[] } }
      ).context;
      expect(context.timers).toEqual([]);
      expect(context.pending).toEqual([]);

      // Past every deadline, and across a restart, only the closing stage was sent.
      clock.advanceTo(START.plus({ hours: 3 }));
      engine.stop();
      engine = startEngine();
      clock.advanceTo(START.plus({ hours: 6 }));
      const closing = action === 'resolve' ? 'all-clear' : 'retraction';
      expect(
        store
          .listMessages(id)
          .slice(before)
          .map((message) => `${message.stageId}:${message.personId}`),
      ).toEqual([`${closing}:ada`, `${closing}:bert`]);
      expect(auditOf([id], 'timer.fired').map((entry) => entry.data.timerId)).toEqual([
        'stage:notice',
      ]);
      expect(() => engine.approve(id, 'notice', 'ilse')).toThrow(
        expect.objectContaining({ code: 'E_ENGINE_INCIDENT_CLOSED' }),
      );
    },
  );

  it('records a stage waiting for approval as skipped once when the incident closes', () => {
    const id = startIncident();
    clock.advanceTo(START.plus({ minutes: 6 }));

    engine.resolve(id, 'ada');

    expect(auditOf([id], 'stage.skipped').map((entry) => entry.data.stageId)).toEqual([
      'escalate',
      'update',
      'notice',
    ]);
  });
});
