import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { parseDirectory, PlaybookValidationError } from '../../src/index.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURES = 'test/fixtures/directories';

describe('parseDirectory', () => {
  it.each(['examples/directory.yaml', `${FIXTURES}/valid-minimal.yaml`])(
    'loads %s without problems',
    (file) => {
      const directory = parseDirectory(readText(file), file);

      expect(directory.people.length).toBeGreaterThan(0);
    },
  );

  it('reports the line and column of a person id used twice', () => {
    const file = `${FIXTURES}/duplicate-person-id.yaml`;

    const problems = problemsOf(file);

    expect(problems).toEqual([
      expect.objectContaining({
        code: 'E_DIRECTORY_DUPLICATE_ID',
        location: { file, line: 10, col: 9 },
      }),
    ]);
  });

  it('reports the line and column of a time zone that is not in the IANA database', () => {
    const file = `${FIXTURES}/bad-time-zone.yaml`;

    const problems = problemsOf(file);

    expect(problems).toEqual([
      expect.objectContaining({ code: 'E_PLAYBOOK_SCHEMA', location: { file, line: 13, col: 15 } }),
    ]);
  });
});

function readText(relativePath: string): string {
  return readFileSync(path.join(ROOT, relativePath), 'utf8');
}

function problemsOf(file: string): PlaybookValidationError['problems'] {
  try {
    parseDirectory(readText(file), file);
  } catch (error) {
    if (error instanceof PlaybookValidationError) return error.problems;
    throw error;
  }
  throw new Error(`${file} loaded without problems`);
}
