import { DateTime } from 'luxon';
import { describe, expect, it } from 'vitest';

import {
  countSmsSegments,
  createEngine,
  IncidentStore,
  ManualClock,
  parseDirectory,
  parsePlaybook,
  transliterateToGsm,
} from '../../src/index.js';

describe('transliterateToGsm', () => {
  it('replaces look-alikes and accents GSM lacks, and keeps what GSM has or cannot spell', () => {
    const text = '„Störung“ – Server “db-1” in Plzeň… Grüße, Łukasz 🔥';

    const { text: result, replaced } = transliterateToGsm(text);

    expect(result).toBe('"Störung" - Server "db-1" in Plzen... Grüße, Lukasz 🔥');
    expect(replaced).toBe(8);
    expect(countSmsSegments(transliterateToGsm('Fällt aus – bitte prüfen').text).encoding).toBe(
      'GSM-7',
    );
  });

  it('halves the parts of a long message with typographic punctuation', () => {
    const text = `Rechenzentrum Süd – Stromausfall seit 03:12. ${'Bitte „Notfallplan B“ beachten. '.repeat(4)}`;

    expect(countSmsSegments(text)).toMatchObject({ encoding: 'UCS-2', segments: 3 });
    expect(countSmsSegments(transliterateToGsm(text).text)).toMatchObject({
      encoding: 'GSM-7',
      segments: 2,
    });
  });
});

describe('channels.sms.transliterate in a playbook', () => {
  const playbook = (transliterate: boolean): string => `apiVersion: tocsin/v1
kind: Playbook
metadata: { name: translit, version: 1 }
channels: { sms: { transliterate: ${transliterate} } }
triggers: [{ source: manual }]
audiences:
  oncall: { select: { roles: [oncall] }, channels: [sms] }
stages:
  - { id: page, after: 0m, audiences: [oncall] }
messages:
  page: { oncall: { sms: 'Ausfall – „Kern-Switch“ down' } }
`;

  it('sends the GSM-7 spelling and records its encoding', () => {
    const decided = [true, false].map((transliterate) => {
      const store = new IncidentStore(':memory:');
      const engine = createEngine({
        store,
        clock: new ManualClock(DateTime.fromISO('2026-12-04T09:00:00Z')),
        directory: parseDirectory(
          `apiVersion: tocsin/v1
kind: Directory
people: [{ id: ada, name: Ada, phone: '+12025550101', roles: [oncall] }]
`,
          'directory.yaml',
        ),
      });
      engine.loadPlaybooks([parsePlaybook(playbook(transliterate), 'translit.yaml')]);
      engine.start();
      const id = engine.declare({ playbook: 'translit', variables: {}, by: 'test' }).id;
      const [row] = store.listMessages(id);
      return [row?.body, row?.smsEncoding];
    });

    expect(decided).toEqual([
      ['Ausfall - "Kern-Switch" down', 'GSM-7'],
      ['Ausfall – „Kern-Switch“ down', 'UCS-2'],
    ]);
  });
});
