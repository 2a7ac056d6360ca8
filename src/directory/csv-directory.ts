import { parse } from 'csv-parse/sync';
import { IANAZone } from 'luxon';

import { PlaybookValidationError } from '../errors.js';
import type { ErrorCode, Problem } from '../errors.js';
import { PackedPeopleBuilder } from './packed-people.js';
import type { Directory } from './types.js';

/** The columns a CSV directory may have; `id` and `name` are required. */
const COLUMNS = [
  'id',
  'name',
  'phone',
  'email',
  'chat',
  'locale',
  'timeZone',
  'roles',
  'groups',
  'tags',
] as const;
type Column = (typeof COLUMNS)[number];

// The same rules as schemas/directory.schema.json, for one field at a time.
const RULES: Partial<Record<Column, { pattern: RegExp; hint: string }>> = {
  id: { pattern: /^[a-z0-9][a-z0-9._-]{0,62}$/, hint: 'lower-case letters, digits, . _ -' },
  phone: { pattern: /^\+[1-9][0-9]{6,14}$/, hint: 'E.164, like +4915123456789' },
  email: { pattern: /^[^\s@]+@[^\s@]+\.[^\s@]+$/, hint: 'an address like ada@example.com' },
  chat: { pattern: /^[a-z0-9][a-z0-9_-]{0,62}$/, hint: "a chat webhook's name, like it-ops" },
  locale: { pattern: /^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$/, hint: 'a BCP 47 tag like de or en-GB' },
};

/** Lists in one cell: roles, groups and tags are separated by semicolons. */
const LIST_SEPARATOR = ';';

/**
 * Reads a directory kept as CSV, for directories too large for YAML (a customer base, a whole
 * staff): a header row naming the columns (id and name, then any of phone, email, chat,
 * locale, timeZone, roles, groups, tags), one person per row, lists separated by semicolons.
 * Each problem names its line and column.
 *
 * @throws PlaybookValidationError listing every problem (at most 50)
 */
export function parseCsvDirectory(text: string, file: string): Directory {
  const problems: Problem[] = [];
  const people = new PackedPeopleBuilder(list);
  const seen = new Set<string>();
  let columns: Column[] | undefined;
  let isHeaderBad = false;

  const readHeader = (record: string[], line: number, raw: string): void => {
    columns = record as Column[];
    const starts = fieldStarts(raw);
    record.forEach((column, index) => {
      if (!(COLUMNS as readonly string[]).includes(column)) {
        problems.push({
          code: 'E_PLAYBOOK_SCHEMA',
          message: `column "${column}" is not known; use ${COLUMNS.join(', ')}`,
          location: { file, line, col: starts[index] ?? 1 },
        });
      }
    });
    for (const required of ['id', 'name'] as const) {
      if (!record.includes(required)) {
        problems.push({
          code: 'E_PLAYBOOK_SCHEMA',
          message: `the header has no "${required}" column; every person needs one`,
          location: { file, line, col: 1 },
        });
      }
    }
  };

  const readRow = (header: Column[], record: string[], line: number, raw: string): void => {
    let starts: number[] | undefined;
    const at = (column: Column): Problem['location'] => {
      starts ??= fieldStarts(raw);
      return { file, line, col: starts[header.indexOf(column)] ?? 1 };
    };
    const cell = (column: Column): string => {
      const index = header.indexOf(column);
      return index < 0 ? '' : (record[index] ?? '');
    };
    const report = (
      column: Column,
      message: string,
      code: ErrorCode = 'E_PLAYBOOK_SCHEMA',
    ): void => {
      if (problems.length < MAX_PROBLEMS) problems.push({ code, message, location: at(column) });
    };

    for (const [column, rule] of Object.entries(RULES) as [
      Column,
      { pattern: RegExp; hint: string },
    ][]) {
      const value = cell(column);
      if (value !== '' && !rule.pattern.test(value)) {
        // The value itself is not repeated: it may be a phone number or an address.
        report(column, `${column} is not valid; write ${rule.hint}`);
      }
    }
    // Control characters have no place in a directory, and the packed form separates with two.
    for (const column of header) {
      if (CONTROL.test(cell(column))) {
        report(
          column,
          `${column} holds a control character; remove it (tabs and line breaks may stay)`,
        );
      }
    }
    const id = cell('id');
    if (id === '') report('id', 'a person without an id; give every row one');
    else if (seen.has(id)) {
      report(
        'id',
        `person id "${id}" is used twice; give each person their own id`,
        'E_DIRECTORY_DUPLICATE_ID',
      );
    }
    seen.add(id);
    if (cell('name') === '') report('name', `person "${id}" has no name; add one`);
    if (cell('phone') === '' && cell('email') === '' && cell('chat') === '') {
      report('id', `person "${id}" has no phone, email or chat; give them a way to be reached`);
    }
    const timeZone = cell('timeZone');
    if (timeZone !== '' && !IANAZone.isValidZone(timeZone)) {
      report(
        'timeZone',
        `"${timeZone}" is not an IANA time zone; write it like Europe/Berlin or America/New_York`,
      );
    }
    // Once anything is wrong, the rest is only checked, not kept.
    if (problems.length > 0) return;

    people.add({
      id,
      name: cell('name'),
      phone: cell('phone'),
      email: cell('email'),
      chat: cell('chat'),
      locale: cell('locale'),
      timeZone,
      roles: cell('roles'),
      groups: cell('groups'),
      tags: cell('tags'),
    });
  };

  try {
    // Each record is read as the parser meets it and not kept: a directory of 100,000 people
    // never exists twice in memory.
    parse(text, {
      bom: true,
      raw: true,
      relax_column_count: false,
      skip_empty_lines: true,
      trim: true,
      on_record: (entry: unknown, context: { lines: number }) => {
        const { record, raw } = entry as { record: string[]; raw: string };
        if (columns === undefined) {
          readHeader(record, context.lines, raw);
          isHeaderBad = problems.length > 0;
        } else if (!isHeaderBad && problems.length < MAX_PROBLEMS) {
          readRow(columns, record, context.lines, raw);
        }
        return null;
      },
    });
  } catch (cause) {
    if (cause instanceof PlaybookValidationError) throw cause;
    const line = (cause as { lines?: number }).lines ?? 1;
    throw new PlaybookValidationError(file, [
      {
        code: 'E_PLAYBOOK_SYNTAX',
        message: `${(cause as Error).message.split('\n')[0] ?? 'the CSV does not parse'}; fix the CSV (quote fields that hold commas)`,
        location: { file, line, col: 1 },
      },
    ]);
  }
  if (columns === undefined) {
    throw new PlaybookValidationError(file, [
      {
        code: 'E_PLAYBOOK_SCHEMA',
        message: 'the CSV directory is empty; start it with a header row: id,name,phone,...',
        location: { file, line: 1, col: 1 },
      },
    ]);
  }
  if (problems.length > 0) throw new PlaybookValidationError(file, problems);
  return { file, people: people.build() };
}

const MAX_PROBLEMS = 50;
// eslint-disable-next-line no-control-regex -- control characters are what it finds
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

// Lists repeat (everyone in "staff"): one shared array per distinct cell, read-only.
const LISTS = new Map<string, string[]>();

function list(value: string): string[] {
  const cached = LISTS.get(value);
  if (cached) return cached;
  const items =
    value === ''
      ? []
      : [...new Set(value.split(LIST_SEPARATOR).map((item) => item.trim()))].filter(
          (item) => item !== '',
        );
  // Shared by everyone with the same cell: frozen, so a change to one person's list fails loudly
  // instead of changing everybody's.
  Object.freeze(items);
  if (LISTS.size < 10_000) LISTS.set(value, items);
  return items;
}

/** The 1-based column where each field of a raw CSV line starts, quotes respected. */
function fieldStarts(rawRecord: string): number[] {
  // A record's raw text begins with the blank lines skipped before it.
  const raw = rawRecord.replace(/^[\r\n]+/, '');
  const starts = [1];
  let isQuoted = false;
  for (let index = 0; index < raw.length; index++) {
    const character = raw[index];
    if (character === '"') isQuoted = !isQuoted;
    else if (character === ',' && !isQuoted) starts.push(index + 2);
    else if (character === '\n' && !isQuoted) break;
  }
  return starts;
}
