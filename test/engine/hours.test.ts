import { DateTime } from 'luxon';
import { describe, expect, it } from 'vitest';

import {
  createEngine,
  IncidentStore,
  ManualClock,
  parseDirectory,
  parsePlaybook,
} from '../../src/index.js';

const playbook = parsePlaybook(
  `apiVersion: tocsin/v1
kind: Playbook
metadata: { name: hours, version: 1 }
triggers: [{ source: alertmanager }]
hours:
  business: { zone: Europe/Berlin, days: [mon, tue, wed, thu, fri], from: '08:00', to: '18:00' }
  quiet: { from: '22:00', to: '07:00' }
audiences:
  team: { select: { roles: [oncall] }, channels: [sms] }
  customers: { select: { tags: [customer] }, channels: [email] }
stages:
  - { id: page, after: 0m, critical: true, audiences: [team] }
  - { id: heads-up, after: 0m, audiences: [team] }
  - { id: customer-letter, after: 1h, during: business, audiences: [customers] }
messages:
  page: { team: { sms: Page } }
  heads-up: { team: { sms: Heads-up } }
  customer-letter: { customers: { email: { subject: Letter, text: We had trouble. } } }
`,
  'hours.yaml',
);

const directory = parseDirectory(
  `apiVersion: tocsin/v1
kind: Directory
people:
  - { id: ada, name: Ada, phone: '+12025550101', roles: [oncall], timeZone: Europe/Berlin }
  - { id: nick, name: Nick, phone: '+12025550102', roles: [oncall], timeZone: America/New_York }
  - { id: kim, name: Kim, email: kim@example.com, tags: [customer], timeZone: Europe/London }
`,
  'directory.yaml',
);

function startAt(iso: string): { store: IncidentStore; clock: ManualClock; id: string } {
  const store = new IncidentStore(':memory:');
  const clock = new ManualClock(DateTime.fromISO(iso, { zone: 'utc' }));
  const engine = createEngine({ store, clock, directory });
  engine.loadPlaybooks([playbook]);
  engine.start();
  const id = engine.startIncident({ playbook: 'hours', variables: {}, createdBy: 'test' }).id;
  return { store, clock, id };
}

describe('business and quiet hours', () => {
  it('holds a message until the recipient quiet hours end, in their own zone, but not a critical one', () => {
    // 23:30 in Berlin on the night clocks go forward; 17:30 in New York.
    const { store, id } = startAt('2026-03-28T22:30:00Z');

    const held = Object.fromEntries(
      store
        .listMessages(id)
        .map((message) => [`${message.stageId}:${message.personId}`, message.notBefore ?? 'now']),
    );

    expect(held).toEqual({
      'page:ada': 'now',
      'page:nick': 'now',
      'heads-up:ada': '2026-03-29T05:00:00.000Z',
      'heads-up:nick': 'now',
    });
  });

  it('moves a stage due outside business hours to the next opening, across the DST change', () => {
    // Saturday 2026-03-28 20:00 UTC + 1h is outside business hours; Monday 08:00 CEST is 06:00 UTC.
    const { store, clock, id } = startAt('2026-03-28T20:00:00Z');

    clock.advanceTo(DateTime.fromISO('2026-03-30T05:59:00Z'));
    expect(
      store.listMessages(id).filter((message) => message.stageId === 'customer-letter'),
    ).toEqual([]);
    clock.advanceTo(DateTime.fromISO('2026-03-30T06:00:00Z'));

    const letter = store.listMessages(id).find((message) => message.stageId === 'customer-letter');
    expect(letter?.decidedAt).toBe('2026-03-30T06:00:00.000Z');
  });

  it('fires a business-hours stage on time when it falls inside them', () => {
    const { store, clock, id } = startAt('2026-03-31T09:00:00Z');

    clock.advanceTo(DateTime.fromISO('2026-03-31T10:00:00Z'));

    expect(
      store.listMessages(id).find((message) => message.stageId === 'customer-letter')?.decidedAt,
    ).toBe('2026-03-31T10:00:00.000Z');
  });
});

describe('business hours across both DST changes of Berlin and New York', () => {
  function letterAt(zone: string, startIso: string): string | undefined {
    const zoned = parsePlaybook(
      `apiVersion: tocsin/v1
kind: Playbook
metadata: { name: zoned, version: 1 }
triggers: [{ source: alertmanager }]
hours:
  business: { zone: ${zone}, days: [mon, tue, wed, thu, fri], from: '08:00', to: '18:00' }
audiences:
  customers: { select: { tags: [customer] }, channels: [email] }
stages:
  - { id: customer-letter, after: 1h, during: business, audiences: [customers] }
messages:
  customer-letter: { customers: { email: { subject: Letter, text: We had trouble. } } }
`,
      'zoned.yaml',
    );
    const store = new IncidentStore(':memory:');
    const clock = new ManualClock(DateTime.fromISO(startIso, { zone: 'utc' }));
    const engine = createEngine({ store, clock, directory });
    engine.loadPlaybooks([zoned]);
    engine.start();
    const id = engine.startIncident({ playbook: 'zoned', variables: {}, createdBy: 'test' }).id;
    // Walk through the weekend in half-hour steps; the letter is decided when it is due.
    const end = DateTime.fromISO(startIso, { zone: 'utc' }).plus({ days: 3 });
    for (let at = clock.now(); at < end; at = at.plus({ minutes: 30 })) clock.advanceTo(at);
    const decided = store.listMessages(id).map((message) => message.decidedAt);
    store.close();
    expect(decided).toHaveLength(1);
    return decided[0];
  }

  it.each([
    // Saturday evening before each change; the letter waits for Monday 08:00 local time.
    ['Europe/Berlin', '2026-03-28T20:00:00Z', '2026-03-30T06:00:00.000Z'],
    ['Europe/Berlin', '2026-10-24T20:00:00Z', '2026-10-26T07:00:00.000Z'],
    ['America/New_York', '2026-03-07T20:00:00Z', '2026-03-09T12:00:00.000Z'],
    ['America/New_York', '2026-10-31T20:00:00Z', '2026-11-02T13:00:00.000Z'],
  ])('in %s from %s sends at %s', (zone, start, expected) => {
    expect(letterAt(zone, start)).toBe(expected);
  });

  it('holds a New York recipient past quiet hours on the night clocks go forward', () => {
    // 22:30 EST on 7 March; quiet hours end at 07:00 EDT on 8 March, 11:00 UTC.
    const { store, id } = startAt('2026-03-08T03:30:00Z');

    const heldUntil = store
      .listMessages(id)
      .find((message) => message.stageId === 'heads-up' && message.personId === 'nick')?.notBefore;

    expect(heldUntil).toBe('2026-03-08T11:00:00.000Z');
  });
});
