import charset from '../../schemas/data/gsm-03.38-charset.json' with { type: 'json' };

/** How an SMS body is encoded and how many parts it takes. */
export interface SmsSegments {
  encoding: 'GSM-7' | 'UCS-2';
  /** Septets (GSM-7) or UTF-16 code units (UCS-2). */
  units: number;
  segments: number;
}

const BASIC = new Set(charset.basic.map((entry) => entry.char));
const EXTENSION = new Set(charset.extension.map((entry) => entry.char));

/**
 * Counts the parts of an SMS as 3GPP TS 23.038/23.040 define them: GSM-7 when every character is
 * in the default alphabet or its extension (2 septets each), UCS-2 otherwise; 160/70 units
 * alone, 153/67 per part when concatenated, and an escape pair or surrogate pair never split.
 */
export function countSmsSegments(text: string): SmsSegments {
  // Reads the text character by character without copying it: this runs for every SMS decided.
  let isGsm = true;
  let septets = 0;
  for (const character of text) {
    if (BASIC.has(character)) septets += 1;
    else if (EXTENSION.has(character)) septets += 2;
    else {
      isGsm = false;
      break;
    }
  }
  const encoding = isGsm ? 'GSM-7' : 'UCS-2';
  const units = isGsm ? septets : text.length;
  const single = isGsm ? 160 : 70;
  const part = isGsm ? 153 : 67;
  if (units <= single) return { encoding, units, segments: units === 0 ? 0 : 1 };

  let segments = 1;
  let used = 0;
  for (const character of text) {
    const cost = isGsm ? (EXTENSION.has(character) ? 2 : 1) : character.length;
    if (used + cost > part) {
      segments++;
      used = 0;
    }
    used += cost;
  }
  return { encoding, units, segments };
}
