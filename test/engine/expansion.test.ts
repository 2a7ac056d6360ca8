import { DateTime } from 'luxon';
import { describe, expect, it } from 'vitest';

import {
  createEngine,
  EXPANSION_FIRST_PART,
  EXPANSION_PART,
  IncidentStore,
  ManualClock,
  parseCsvDirectory,
  parsePlaybook,
} from '../../src/index.js';

const START = DateTime.fromISO('2026-12-04T09:00:00Z');
const PEOPLE = 1_234;

// Everyone is staff; the first 100 are on call too, so they are in both audiences of the page.
const directory = parseCsvDirectory(
  [
    'id,name,phone,roles',
    ...Array.from(
      { length: PEOPLE },
      (_, i) =>
        `p${i},Person ${i},+1202${String(5_000_000 + i).padStart(7, '0')},${i < 100 ? 'staff;oncall' : 'staff'}`,
    ),
  ].join('\n'),
  'people.csv',
);

const playbook = parsePlaybook(
  `apiVersion: tocsin/v1
kind: Playbook
metadata: { name: all-staff, version: 1 }
triggers: [{ source: manual }]
audiences:
  oncall: { select: { roles: [oncall] }, channels: [sms] }
  staff: { select: { roles: [staff] }, channels: [sms] }
stages:
  - { id: page, after: 0m, audiences: [oncall, staff] }
  - { id: clear, on: resolved, audiences: [oncall] }
  - { id: cancelled, on: cancelled, audiences: [staff] }
messages:
  page:
    oncall: { sms: 'On call: {{ recipient.id }}' }
    staff: { sms: 'Staff: {{ recipient.id }}' }
  clear:
    oncall: { sms: 'Clear' }
  cancelled:
    staff: { sms: 'False alarm, sorry' }
`,
  'all-staff.yaml',
);

function setUp(store = new IncidentStore(':memory:')) {
  const clock = new ManualClock(START);
  const engine = createEngine({ store, clock, directory });
  engine.loadPlaybooks([playbook]);
  return { store, clock, engine };
}

describe('a stage to more people than one transaction decides', () => {
  it('decides the first part with the firing and the rest in parts, each person once', () => {
    const { store, engine } = setUp();
    const id = engine.declare({ playbook: 'all-staff', variables: {}, by: 'test' }).id;

    const atFiring = store.listMessages(id).length;
    const parts = engine.expandAll();
    const rows = store.listMessages(id);

    // The first part holds the 100 on call; the staff pairs that name them again come later
    // and are not told twice.
    expect(atFiring).toBe(EXPANSION_FIRST_PART);
    // 1,334 pairs (100 people in both audiences): the first part, then parts of 500.
    expect(parts).toBe(Math.ceil((PEOPLE + 100 - EXPANSION_FIRST_PART) / EXPANSION_PART));
    expect(rows).toHaveLength(PEOPLE);
    expect(new Set(rows.map((row) => row.personId)).size).toBe(PEOPLE);
    expect(
      rows.filter((row) => row.body.startsWith('On call')).map((row) => row.audienceId),
    ).toEqual(Array(100).fill('oncall'));
    expect(store.nextExpansion()).toBeUndefined();
    expect(store.listAudit(id).filter((entry) => entry.type === 'stage.expanded')).toHaveLength(1);
  });

  it('expands on its own in a started engine, part by part between turns of the event loop', async () => {
    const { store, engine } = setUp();
    let wakes = 0;
    engine.onMessagesDecided(() => wakes++);
    engine.start();
    const id = engine.declare({ playbook: 'all-staff', variables: {}, by: 'test' }).id;

    for (let turn = 0; turn < 20 && store.nextExpansion(); turn++) {
      await new Promise((resolve) => setImmediate(resolve));
    }

    expect(store.listMessages(id)).toHaveLength(PEOPLE);
    // The dispatcher is woken after the firing and after every later part that decided
    // something (the part holding only people told already decides nothing).
    const parts = Math.ceil((PEOPLE + 100 - EXPANSION_FIRST_PART) / EXPANSION_PART);
    const emptyParts = Math.floor(100 / EXPANSION_PART);
    expect(wakes).toBe(1 + parts - emptyParts);
    engine.stop();
  });

  it('goes on where it stopped after a restart', () => {
    const first = setUp();
    const id = first.engine.declare({ playbook: 'all-staff', variables: {}, by: 'test' }).id;
    first.engine.expandNext();
    first.engine.stop();

    const second = setUp(first.store);
    second.engine.restore();
    const before = second.store.listMessages(id).length;
    second.engine.expandAll();

    // The first part (100 on call) and one more (500 staff pairs, 100 of them told already).
    expect(before).toBe(EXPANSION_FIRST_PART + EXPANSION_PART - 100);
    expect(second.store.listMessages(id)).toHaveLength(PEOPLE);
  });

  it('stops deciding the rest when the incident is resolved, so nothing follows the all-clear', () => {
    const { store, engine } = setUp();
    const id = engine.declare({ playbook: 'all-staff', variables: {}, by: 'test' }).id;

    engine.resolve(id, 'test');
    engine.expandAll();

    const rows = store.listMessages(id);
    expect(rows.filter((row) => row.stageId === 'page')).toHaveLength(EXPANSION_FIRST_PART);
    expect(rows.filter((row) => row.stageId === 'clear')).toHaveLength(100);
    expect(
      store
        .listAudit(id)
        .filter((entry) => entry.type === 'stage.expansion-dropped')
        .map((entry) => entry.data),
    ).toEqual([{ stageId: 'page', occurrence: 1, undecided: PEOPLE + 100 - EXPANSION_FIRST_PART }]);
  });

  it('withdraws what was decided but not sent when the incident closes, and tells everyone its own closing stage', () => {
    const { store, engine } = setUp();
    const id = engine.declare({ playbook: 'all-staff', variables: {}, by: 'test' }).id;

    engine.cancel(id, 'test');
    engine.expandAll();

    const rows = store.listMessages(id);
    const page = rows.filter((row) => row.stageId === 'page');
    const retraction = rows.filter((row) => row.stageId === 'cancelled');
    expect(new Set(page.map((row) => `${row.status}:${row.errorCode}`))).toEqual(
      new Set(['failed:E_ENGINE_INCIDENT_CLOSED']),
    );
    // The closing stage to 1,234 people is itself decided in parts, and to the end.
    expect(retraction).toHaveLength(PEOPLE);
    expect(new Set(retraction.map((row) => row.status))).toEqual(new Set(['decided']));
    expect(
      store
        .listAudit(id)
        .filter((entry) => entry.type === 'stage.expansion-dropped')
        .map((entry) => entry.data.stageId),
    ).toEqual(['page']);
  });

  it('in a dry run, decides a sample and counts the rest by channel', () => {
    const store = new IncidentStore(':memory:');
    const engine = createEngine({
      store,
      clock: new ManualClock(START),
      directory,
      sampleLargeStages: 20,
    });
    engine.loadPlaybooks([playbook]);
    const id = engine.declare({ playbook: 'all-staff', variables: {}, by: 'test' }).id;

    const fired = store.listAudit(id).find((entry) => entry.type === 'stage.fired');

    expect(store.listMessages(id)).toHaveLength(20);
    expect(fired?.data).toMatchObject({
      messages: 20,
      sampled: true,
      wouldSend: PEOPLE,
      byChannel: { sms: PEOPLE },
    });
    expect(store.nextExpansion()).toBeUndefined();
  });
});
