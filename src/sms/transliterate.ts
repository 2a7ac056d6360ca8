import charset from '../../schemas/data/gsm-03.38-charset.json' with { type: 'json' };

const GSM = new Set([...charset.basic, ...charset.extension].map((entry) => entry.char));

// Look-alikes that carry no meaning of their own: typographic quotes, dashes, spaces, and a few
// symbols with a plain spelling.
const REPLACEMENTS: Record<string, string> = {
  '\u2018': "'",
  '\u2019': "'",
  '\u201a': "'",
  '\u201b': "'",
  '\u2032': "'",
  '\u201c': '"',
  '\u201d': '"',
  '\u201e': '"',
  '\u201f': '"',
  '\u2033': '"',
  '\u00ab': '"',
  '\u00bb': '"',
  '\u2039': "'",
  '\u203a': "'",
  '\u2010': '-',
  '\u2011': '-',
  '\u2012': '-',
  '\u2013': '-',
  '\u2014': '-',
  '\u2015': '-',
  '\u2212': '-',
  '\u2026': '...',
  '\u00a0': ' ',
  '\u2002': ' ',
  '\u2003': ' ',
  '\u2009': ' ',
  '\u200a': ' ',
  '\u202f': ' ',
  '\u200b': '',
  '\u2022': '-',
  '\u00b7': '-',
  '\u2192': '->',
  '\u2190': '<-',
  '\u00d7': 'x',
  '\u2264': '<=',
  '\u2265': '>=',
  '\u2122': '(TM)',
  '\u00a9': '(C)',
  '\u00ae': '(R)',
  '\u00b0': ' deg',
  '\u0141': 'L',
  '\u0142': 'l',
  '\u0110': 'D',
  '\u0111': 'd',
  '\u0152': 'OE',
  '\u0153': 'oe',
  '\u00de': 'Th',
  '\u00fe': 'th',
  '\u00f0': 'd',
  '\u0131': 'i',
};

/**
 * Replaces characters outside the GSM 03.38 alphabet with the nearest GSM-7 spelling, so an SMS
 * is sent in 160-character parts instead of 70: typographic quotes and dashes become plain ones,
 * and accented letters GSM lacks lose their accent (á → a, č → c), while those it has (ä, é, ñ,
 * ø) stay. Characters with no spelling (emoji, other scripts) are kept, and the message stays
 * UCS-2. Returns the text and how many characters changed.
 */
export function transliterateToGsm(text: string): { text: string; replaced: number } {
  let replaced = 0;
  let result = '';
  for (const character of text) {
    if (GSM.has(character)) {
      result += character;
      continue;
    }
    const spelled = REPLACEMENTS[character] ?? withoutAccents(character);
    if (spelled !== undefined && [...spelled].every((part) => GSM.has(part))) {
      result += spelled;
      replaced++;
    } else {
      result += character;
    }
  }
  return { text: result, replaced };
}

function withoutAccents(character: string): string | undefined {
  const base = character.normalize('NFD').replace(/\p{Mn}+/gu, '');
  return base !== character && base !== '' ? base : undefined;
}
