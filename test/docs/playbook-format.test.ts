import { readFileSync } from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import {
  listFields,
  loadSources,
  renderPlaybookFormatDoc,
  writePlaybookFormatDoc,
} from '../../scripts/playbook-format-doc.js';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const DOC = path.join(ROOT, 'docs/playbook-format.md');

describe('docs/playbook-format.md', () => {
  it('is what the schema and the example playbooks generate (npm run docs:format)', () => {
    if (process.env.UPDATE_DOCS) writePlaybookFormatDoc();

    expect(readFileSync(DOC, 'utf8')).toBe(renderPlaybookFormatDoc());
  });

  it('documents every field with a description and an example', () => {
    const { schema, examples } = loadSources();

    const fields = listFields(schema, examples);
    const incomplete = fields.filter(
      (field) =>
        field.example === undefined && !field.path.endsWith('[]') && !/<\w+>$/.test(field.path),
    );

    expect(fields.length).toBeGreaterThan(40);
    expect(incomplete.map((field) => field.path)).toEqual([]);
  });
});
