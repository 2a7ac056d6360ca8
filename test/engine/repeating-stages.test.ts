import { DateTime } from 'luxon';
import { beforeEach, describe, expect, it } from 'vitest';

import {
  createEngine,
  IncidentStore,
  ManualClock,
  parseDirectory,
  parsePlaybook,
} from '../../src/index.js';
import type { Engine } from '../../src/index.js';

const START = DateTime.fromISO('2026-12-03T09:00:00Z');

const playbook = parsePlaybook(
  `apiVersion: tocsin/v1
kind: Playbook
metadata: { name: updates, version: 1 }
locale: en
triggers: [{ source: alertmanager }]
audiences:
  team: { select: { roles: [oncall] }, channels: [sms] }
stages:
  - { id: page, after: 0m, every: 10m, until: acknowledged, audiences: [team] }
  - { id: update, after: 30m, every: 30m, until: resolved, audiences: [team] }
  - { id: retraction, on: cancelled, audiences: [team] }
messages:
  page:
    team:
      sms: 'Page {{ stage.occurrence }}, next {{ stage.nextAt | datetime: "HH:mm" }}'
      locales:
        de: { sms: 'Alarm {{ stage.occurrence }}' }
  update:
    team: { sms: 'Update {{ stage.occurrence }} after {{ incident.elapsedMinutes }} min' }
  retraction:
    team: { sms: 'Please ignore the alarm: it was cancelled.' }
`,
  'updates.yaml',
);

const directory = parseDirectory(
  `apiVersion: tocsin/v1
kind: Directory
people:
  - { id: ada, name: Ada, phone: '+12025550101', roles: [oncall], timeZone: UTC }
  - { id: bert, name: Bert, phone: '+12025550102', roles: [oncall], locale: de-AT, timeZone: UTC }
`,
  'directory.yaml',
);

describe('repeating and event stages', () => {
  let store: IncidentStore;
  let clock: ManualClock;
  let engine: Engine;
  let id: string;

  beforeEach(() => {
    store = new IncidentStore(':memory:');
    clock = new ManualClock(START);
    engine = createEngine({ store, clock, directory });
    engine.loadPlaybooks([playbook]);
    engine.start();
    id = engine.startIncident({ playbook: 'updates', variables: {}, createdBy: 'test' }).id;
  });

  function sent(stageId: string, personId = 'ada'): string[] {
    return store
      .listMessages(id)
      .filter((message) => message.stageId === stageId && message.personId === personId)
      .map((message) => message.body);
  }

  it('repeats a page every 10 minutes until acknowledged, counting occurrences', () => {
    clock.advanceTo(START.plus({ minutes: 25 }));
    engine.acknowledge(id, 'ada', 'test');
    clock.advanceTo(START.plus({ minutes: 59 }));

    expect(sent('page')).toEqual([
      'Page 1, next 09:10',
      'Page 2, next 09:20',
      'Page 3, next 09:30',
    ]);
  });

  it('sends updates every 30 minutes until resolved, none after', () => {
    clock.advanceTo(START.plus({ minutes: 95 }));
    engine.resolve(id, 'test');
    clock.advanceTo(START.plus({ hours: 5 }));

    expect(sent('update')).toEqual([
      'Update 1 after 30 min',
      'Update 2 after 60 min',
      'Update 3 after 90 min',
    ]);
    expect(store.listTimers(id)).toEqual([]);
  });

  it('keeps the series on its schedule after a late wake-up', () => {
    clock.advanceTo(START.plus({ minutes: 29 }));
    engine.stop();
    clock.advanceTo(START.plus({ minutes: 47 }));
    engine = createEngine({ store, clock, directory });
    engine.loadPlaybooks([playbook]);
    engine.restore();
    engine.start();

    expect(sent('update')).toEqual(['Update 1 after 47 min']);
    expect(store.listTimers(id).find((timer) => timer.timerId === 'stage:update')?.dueAt).toBe(
      '2026-12-03T10:00:00.000Z',
    );
  });

  it('does not send the repeats it missed while down in a burst', () => {
    engine.stop();
    clock.advanceTo(START.plus({ hours: 2, minutes: 5 }));
    engine = createEngine({ store, clock, directory });
    engine.loadPlaybooks([playbook]);
    engine.restore();
    engine.start();

    expect(sent('update')).toEqual(['Update 1 after 125 min']);
    expect(sent('page')).toEqual(['Page 1, next 09:10', 'Page 2, next 11:10']);
  });

  it('sends the retraction when the incident is cancelled', () => {
    engine.cancel(id, 'test');

    expect(sent('retraction')).toEqual(['Please ignore the alarm: it was cancelled.']);
    expect(store.getIncident(id)?.status).toBe('cancelled');
  });

  it('chooses the translation by language when the exact locale has none', () => {
    expect(sent('page', 'bert')).toEqual(['Alarm 1']);
  });
});
