import { describe, expect, it } from 'vitest';

import { parseDuration } from '../../src/index.js';

describe('parseDuration', () => {
  it.each([
    ['90s', 90_000],
    ['15m', 15 * 60_000],
    ['1h30m', 90 * 60_000],
    ['250ms', 250],
    ['PT15M', 15 * 60_000],
    ['PT1H30M', 90 * 60_000],
    ['P1D', 24 * 60 * 60_000],
  ])('reads %s as %i ms', (text, ms) => {
    expect(parseDuration(text)?.toMillis()).toBe(ms);
  });

  // A bare P or PT is zero to luxon; as a stage offset it would fire at once instead of failing.
  it.each(['', '15', '15 minutes', 'P', 'PT', 'pt15m'])('rejects %j', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});
