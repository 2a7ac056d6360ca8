import { DateTime } from 'luxon';
import { describe, expect, it } from 'vitest';

import { closingAfter, isWithin, nextOpening } from '../../src/time/index.js';
import type { TimeWindow } from '../../src/time/index.js';

const utc = (iso: string): DateTime => DateTime.fromISO(iso, { zone: 'utc' });
const business = (zone: string): TimeWindow => ({
  zone,
  from: '08:00',
  to: '18:00',
  days: [1, 2, 3, 4, 5],
});
const quiet: TimeWindow = { zone: 'Europe/Berlin', from: '22:00', to: '07:00' };

describe('time windows', () => {
  it('keeps business hours at 08:00 local time across both DST changes in Berlin', () => {
    // Monday after the spring change (CEST, UTC+2) and after the autumn change (CET, UTC+1).
    expect(nextOpening(business('Europe/Berlin'), utc('2026-03-30T05:00:00Z'))?.toISO()).toBe(
      '2026-03-30T06:00:00.000Z',
    );
    expect(nextOpening(business('Europe/Berlin'), utc('2026-10-26T05:00:00Z'))?.toISO()).toBe(
      '2026-10-26T07:00:00.000Z',
    );
  });

  it('keeps business hours at 08:00 local time across both DST changes in New York', () => {
    expect(nextOpening(business('America/New_York'), utc('2026-03-09T10:00:00Z'))?.toISO()).toBe(
      '2026-03-09T12:00:00.000Z',
    );
    expect(nextOpening(business('America/New_York'), utc('2026-11-02T10:00:00Z'))?.toISO()).toBe(
      '2026-11-02T13:00:00.000Z',
    );
  });

  it('skips the weekend to the next business morning', () => {
    // Friday 19:00 in Berlin → Monday 08:00.
    expect(nextOpening(business('Europe/Berlin'), utc('2026-03-27T18:00:00Z'))?.toISO()).toBe(
      '2026-03-30T06:00:00.000Z',
    );
    expect(isWithin(business('Europe/Berlin'), utc('2026-03-28T10:00:00Z'))).toBe(false);
  });

  it('treats an overnight window as belonging to the evening it starts', () => {
    expect(isWithin(quiet, utc('2026-03-28T22:30:00Z'))).toBe(true); // 23:30 CET
    expect(isWithin(quiet, utc('2026-03-29T04:30:00Z'))).toBe(true); // 06:30 CEST, after the change
    expect(isWithin(quiet, utc('2026-03-29T05:30:00Z'))).toBe(false); // 07:30 CEST
    expect(closingAfter(quiet, utc('2026-03-28T22:30:00Z'))?.toISO()).toBe(
      '2026-03-29T05:00:00.000Z',
    );
  });

  it('returns the instant itself when it is already inside, or outside for closing', () => {
    const noon = utc('2026-03-31T10:00:00Z');
    expect(nextOpening(business('Europe/Berlin'), noon)).toBe(noon);
    expect(closingAfter(quiet, noon)).toBe(noon);
  });
});
