import { randomBytes } from 'node:crypto';

import type { DateTime } from 'luxon';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * A sortable, unique id: 10 characters of time, then 10 random ones (the ULID layout), with a
 * prefix saying what it names, e.g. `inc_01JF3Q...`.
 */
export function createId(prefix: string, now: DateTime): string {
  let time = now.toMillis();
  let timePart = '';
  for (let i = 0; i < 10; i++) {
    timePart = ALPHABET[time % 32] + timePart;
    time = Math.floor(time / 32);
  }
  const random = [...randomBytes(10)].map((byte) => ALPHABET[byte % 32]).join('');
  return `${prefix}_${timePart}${random}`;
}
