import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { ERROR_CODES } from '../src/index.js';

const CATALOGUE = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');

/** Table rows of docs/errors.md: `| \`E_CODE\` | meaning | how to fix | since |`. */
const ROWS = CATALOGUE.split('\n')
  .filter((line) => line.startsWith('| `E_'))
  .map((line) => line.split('|').map((cell) => cell.trim()));

const DOCUMENTED = ROWS.map((cells) => (cells[1] ?? '').replaceAll('`', ''));

describe('docs/errors.md', () => {
  it('has a row for every code in ERROR_CODES', () => {
    const missing = Object.keys(ERROR_CODES).filter((code) => !DOCUMENTED.includes(code));

    expect(missing).toEqual([]);
  });

  it('documents no code that ERROR_CODES lacks', () => {
    const codes: readonly string[] = Object.keys(ERROR_CODES);

    const unknown = DOCUMENTED.filter((code) => !codes.includes(code));

    expect(unknown).toEqual([]);
  });

  it('lists each code once', () => {
    const repeated = DOCUMENTED.filter((code, index) => DOCUMENTED.indexOf(code) !== index);

    expect(repeated).toEqual([]);
  });

  it('gives every code a meaning, a fix and the version that introduced it', () => {
    const incomplete = ROWS.filter(
      ([, code, meaning, fix, since]) =>
        !code || !meaning || !fix || !/^\d+\.\d+\.\d+$/.test(since ?? ''),
    ).map((cells) => cells[1]);

    expect(incomplete).toEqual([]);
  });
});
