import { readFileSync } from 'node:fs';
import path from 'node:path';

import { DateTime } from 'luxon';
import { beforeEach, describe, expect, it } from 'vitest';

import {
  createEngine,
  IncidentStore,
  ManualClock,
  parseAlertmanagerPayload,
  parseDirectory,
  parsePlaybook,
} from '../../src/index.js';
import type { Directory, Engine, LoadedPlaybook } from '../../src/index.js';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const START = DateTime.fromISO('2026-03-29T00:30:00Z');
const PLAYBOOK_FILE = path.join(ROOT, 'playbooks/instance-down.yaml');
const playbookText = readFileSync(PLAYBOOK_FILE, 'utf8');
const firing = parseAlertmanagerPayload(
  JSON.parse(
    readFileSync(path.join(ROOT, 'test/fixtures/webhooks/alertmanager-firing.json'), 'utf8'),
  ),
);

// Ada and Dora are on call and in IT management too: both audiences of the all-clear pick them.
// Ada is told on each audience's first channel (SMS and email); Dora has only a phone.
const directory: Directory = parseDirectory(
  `apiVersion: tocsin/v1
kind: Directory
people:
  - { id: ada, name: Ada, phone: '+12025550101', email: ada@example.com, roles: [oncall], groups: [it-management], timeZone: Europe/Berlin }
  - { id: bert, name: Bert, phone: '+12025550102', roles: [oncall] }
  - { id: chioma, name: Chioma, email: chioma@example.com, groups: [it-management] }
  - { id: dora, name: Dora, phone: '+12025550104', roles: [oncall], groups: [it-management] }
  - { id: nobody, name: No Contact, phone: '+12025550109', groups: [staff] }
`,
  'directory.yaml',
);

describe('engine', () => {
  let store: IncidentStore;
  let clock: ManualClock;
  let engine: Engine;
  let playbook: LoadedPlaybook;

  beforeEach(() => {
    store = new IncidentStore(':memory:');
    clock = new ManualClock(START);
    playbook = parsePlaybook(playbookText, PLAYBOOK_FILE);
    engine = startEngine();
  });

  function startEngine(): Engine {
    const created = createEngine({ store, clock, directory });
    created.loadPlaybooks([playbook]);
    created.restore();
    created.start();
    return created;
  }

  function trigger(): string {
    const [outcome] = engine.handleAlertmanager(firing, 'test');
    return outcome?.incidentId ?? '';
  }

  function stagesSent(incidentId: string): string[] {
    return store.listMessages(incidentId).map((m) => `${m.stageId}:${m.personId}:${m.channel}`);
  }

  it('sends the first stage at once and the escalation exactly when it is due', () => {
    const id = trigger();
    expect(stagesSent(id)).toEqual([
      'alert-oncall:ada:sms',
      'alert-oncall:bert:sms',
      'alert-oncall:dora:sms',
    ]);

    clock.advanceTo(START.plus({ minutes: 15, milliseconds: -1 }));
    expect(stagesSent(id)).toHaveLength(3);

    clock.advanceTo(START.plus({ minutes: 15 }));
    const escalation = store.listMessages(id).filter((m) => m.stageId === 'escalate-management');
    expect(escalation.map((m) => `${m.personId}:${m.channel}`)).toEqual([
      'ada:email',
      'chioma:email',
      'dora:sms',
    ]);
    expect(escalation[0]?.decidedAt).toBe('2026-03-29T00:45:00.000Z');
  });

  it('sends no escalation when the acknowledgement comes 1 ms before the deadline', () => {
    const id = trigger();

    clock.advanceTo(START.plus({ minutes: 15, milliseconds: -1 }));
    engine.acknowledge(id, 'bert', 'test');
    clock.advanceTo(START.plus({ hours: 2 }));

    expect(stagesSent(id)).toHaveLength(3);
    expect(store.listTimers(id)).toEqual([]);
    const audit = store.listAudit(id).map((entry) => entry.type);
    expect(audit).toContain('stage.skipped');
    expect(audit).not.toContain('timer.fired');
  });

  it('ignores a timer that fires after an acknowledgement dropped it', () => {
    const id = trigger();
    engine.acknowledge(id, 'ada', 'test');

    // A wake-up that was already scheduled finds no stored timer and changes nothing.
    clock.advanceTo(START.plus({ minutes: 15 }));
    engine.fireDueTimers();

    expect(stagesSent(id)).toHaveLength(3);
  });

  it('resumes from the stored snapshot after a restart and escalates once', () => {
    const id = trigger();
    clock.advanceTo(START.plus({ minutes: 10 }));
    engine.stop();

    engine = startEngine();
    clock.advanceTo(START.plus({ minutes: 30 }));

    expect(stagesSent(id)).toEqual([
      'alert-oncall:ada:sms',
      'alert-oncall:bert:sms',
      'alert-oncall:dora:sms',
      'escalate-management:ada:email',
      'escalate-management:chioma:email',
      'escalate-management:dora:sms',
    ]);
  });

  it('honours an acknowledgement made before a restart', () => {
    const id = trigger();
    engine.acknowledge(id, 'ada', 'test');
    engine.stop();

    engine = startEngine();
    clock.advanceTo(START.plus({ hours: 1 }));

    expect(stagesSent(id)).toHaveLength(3);
    expect(store.getIncident(id)?.status).toBe('open');
  });

  it('fires an overdue timer once at start-up', () => {
    const id = trigger();
    engine.stop();
    clock.advanceTo(START.plus({ hours: 3 }));

    engine = startEngine();
    engine.fireDueTimers();

    expect(stagesSent(id).filter((entry) => entry.startsWith('escalate'))).toHaveLength(3);
  });

  it('drops every pending timer on resolution and sends the all-clear once per person and channel', () => {
    const id = trigger();
    clock.advanceTo(START.plus({ minutes: 5 }));

    engine.handleAlertmanager(
      {
        ...firing,
        status: 'resolved',
        alerts: firing.alerts.map((a) => ({ ...a, status: 'resolved' })),
      },
      'test',
    );
    clock.advanceTo(START.plus({ hours: 1 }));

    expect(store.listTimers(id)).toEqual([]);
    expect(stagesSent(id).filter((entry) => entry.startsWith('all-clear'))).toEqual([
      'all-clear:ada:sms',
      'all-clear:bert:sms',
      'all-clear:dora:sms',
      'all-clear:ada:email',
      'all-clear:chioma:email',
    ]);
    expect(store.getIncident(id)?.status).toBe('resolved');
  });

  it('keeps a timer whose transition failed and fires it once the fault is gone', () => {
    const id = trigger();
    const insert = store.insertMessages.bind(store);
    let failures = 1;
    store.insertMessages = (messages, options) => {
      if (failures-- > 0) throw new Error('disk full');
      return insert(messages, options);
    };

    clock.advanceTo(START.plus({ minutes: 15 }));
    expect(store.listTimers(id).map((timer) => timer.timerId)).toEqual([
      'stage:escalate-management',
    ]);
    clock.advanceTo(START.plus({ minutes: 15, seconds: 5 }));

    expect(stagesSent(id).filter((entry) => entry.startsWith('escalate'))).toHaveLength(3);
    expect(store.listTimers(id)).toEqual([]);
  });

  it('does not start a second incident for a repeated notification', () => {
    const first = trigger();
    const [repeat] = engine.handleAlertmanager(firing, 'test');

    expect(repeat).toEqual({
      playbook: 'instance-down',
      action: 'deduplicated',
      incidentId: first,
    });
    expect(store.listIncidents()).toHaveLength(1);
  });

  it('renders message templates with payload values and in the recipient time zone', () => {
    const id = trigger();
    clock.advanceTo(START.plus({ minutes: 15 }));

    const email = store.listMessages(id).find((m) => m.personId === 'ada' && m.channel === 'email');
    expect(email?.subject).toBe('Unacknowledged: Instance localhost:8081 down');
    // 00:30 UTC on 2026-03-29 is 01:30 CET, half an hour before the switch to summer time.
    expect(email?.body).toContain('01:30 GMT+1');
  });

  it('keeps the playbook version a running incident started with', () => {
    const id = trigger();
    const changed = parsePlaybook(
      playbookText.replace('version: 1', 'version: 2').replace('Unacknowledged: ', 'STILL OPEN: '),
      PLAYBOOK_FILE,
    );
    engine.loadPlaybooks([changed]);

    clock.advanceTo(START.plus({ minutes: 15 }));
    const second =
      engine.handleAlertmanager({ ...firing, groupKey: 'other' }, 'test')[0]?.incidentId ?? '';
    clock.advanceTo(START.plus({ minutes: 31 }));

    const subjects = (incident: string): (string | null)[] =>
      store
        .listMessages(incident)
        .filter((m) => m.stageId === 'escalate-management' && m.channel === 'email')
        .map((m) => m.subject);
    expect(subjects(id)).toEqual(Array(2).fill('Unacknowledged: Instance localhost:8081 down'));
    expect(subjects(second)).toEqual(Array(2).fill('STILL OPEN: Instance localhost:8081 down'));
  });

  it('refuses events for unknown and closed incidents', () => {
    const id = trigger();
    engine.resolve(id, 'test');

    expect(() => engine.acknowledge(id, 'ada', 'test')).toThrow(
      expect.objectContaining({ code: 'E_ENGINE_INCIDENT_CLOSED' }),
    );
    expect(() => engine.acknowledge('inc_missing', 'ada', 'test')).toThrow(
      expect.objectContaining({ code: 'E_ENGINE_UNKNOWN_INCIDENT' }),
    );
  });

  it('starts the playbooks that can start when another one lacks a value', () => {
    const needy = parsePlaybook(
      playbookText
        .replace('name: instance-down', 'name: needs-runbook')
        .replace(
          '      job: commonLabels.job',
          '      job: commonLabels.job\n      runbook: commonAnnotations.runbook_url',
        )
        .replace(
          'variables:\n  alertname:',
          'variables:\n  runbook: { type: string }\n  alertname:',
        ),
      'needs-runbook.yaml',
    );
    engine.loadPlaybooks([needy]);

    const outcomes = engine.handleAlertmanager(firing, 'test');

    expect(
      outcomes.map((outcome) => [outcome.playbook, outcome.action, outcome.errorCode]),
    ).toEqual([
      ['instance-down', 'started', undefined],
      ['needs-runbook', 'rejected', 'E_ENGINE_VARIABLE'],
    ]);
    expect(store.listIncidents()).toHaveLength(1);
  });

  it('writes nothing when a payload lacks a variable without default', () => {
    const broken = {
      ...firing,
      alerts: firing.alerts.map((alert) => ({ ...alert, annotations: {} })),
    };

    expect(() => engine.handleAlertmanager(broken, 'test')).toThrow(
      expect.objectContaining({ code: 'E_ENGINE_VARIABLE' }),
    );
    expect(store.listIncidents()).toEqual([]);
  });
});
