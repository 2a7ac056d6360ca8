import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import {
  findPerson,
  findPersonByAddress,
  heldRoles,
  loadDirectory,
  parseCsvDirectory,
  PlaybookValidationError,
  selectPeople,
} from '../../src/index.js';

const VALID = `id,name,phone,email,locale,timeZone,roles,groups,tags
ada,Ada Quill,+12025550101,ada@example.com,en-GB,Europe/London,oncall;it-lead,it-operations,
bert,"Lindqvist, Bert",+12025550102,,de,Europe/Berlin,oncall,it-operations,key-customer

kim,Kim Lee,,kim@example.com,,,,,key-customer
`;

function problemsOf(text: string): { code: string; line: number; col: number; message: string }[] {
  try {
    parseCsvDirectory(text, 'people.csv');
  } catch (error) {
    if (error instanceof PlaybookValidationError) {
      return error.problems.map((problem) => ({
        code: problem.code,
        line: problem.location.line,
        col: problem.location.col,
        message: problem.message,
      }));
    }
    throw error;
  }
  return [];
}

describe('a directory kept as CSV', () => {
  it('reads people with lists split on semicolons, quoted commas, and the YAML defaults', () => {
    const directory = parseCsvDirectory(VALID, 'people.csv');

    expect([...directory.people]).toEqual([
      {
        id: 'ada',
        name: 'Ada Quill',
        phone: '+12025550101',
        email: 'ada@example.com',
        locale: 'en-GB',
        timeZone: 'Europe/London',
        roles: ['oncall', 'it-lead'],
        groups: ['it-operations'],
        tags: [],
      },
      {
        id: 'bert',
        name: 'Lindqvist, Bert',
        phone: '+12025550102',
        locale: 'de',
        timeZone: 'Europe/Berlin',
        roles: ['oncall'],
        groups: ['it-operations'],
        tags: ['key-customer'],
      },
      {
        id: 'kim',
        name: 'Kim Lee',
        email: 'kim@example.com',
        locale: 'en',
        timeZone: 'UTC',
        roles: [],
        groups: [],
        tags: ['key-customer'],
      },
    ]);
  });

  it('names the line and column of each bad field, and every duplicate id', () => {
    const text = `id,name,phone,timeZone
ada,Ada,+12025550101,Europe/London
bert,"Bert, B",0171 555,Europe/Berlin

ada,Ada again,+12025550103,Mars/Olympus
carl,,+12025550104,
`;

    expect(problemsOf(text)).toEqual([
      expect.objectContaining({ code: 'E_PLAYBOOK_SCHEMA', line: 3, col: 16 }),
      expect.objectContaining({ code: 'E_DIRECTORY_DUPLICATE_ID', line: 5, col: 1 }),
      expect.objectContaining({ code: 'E_PLAYBOOK_SCHEMA', line: 5, col: 28 }),
      expect.objectContaining({ code: 'E_PLAYBOOK_SCHEMA', line: 6, col: 6 }),
    ]);
    expect(problemsOf(text)[0]?.message).toBe(
      'phone is not valid; write E.164, like +4915123456789',
    );
  });

  it('refuses an unknown column, a header without id or name, and a person nobody can reach', () => {
    expect(problemsOf('id,name,mobile\nada,Ada,+12025550101\n')).toEqual([
      expect.objectContaining({
        line: 1,
        col: 9,
        message: expect.stringContaining('"mobile"') as unknown,
      }),
    ]);
    expect(problemsOf('name,phone\nAda,+12025550101\n').map((problem) => problem.message)).toEqual([
      'the header has no "id" column; every person needs one',
    ]);
    expect(problemsOf('id,name,phone\nada,Ada,\n')).toEqual([
      expect.objectContaining({
        line: 2,
        col: 1,
        message: 'person "ada" has no phone, email or chat; give them a way to be reached',
      }),
    ]);
    expect(problemsOf('id,name\nada,"Ada\n')[0]).toMatchObject({ code: 'E_PLAYBOOK_SYNTAX' });
  });

  it('is chosen by loadDirectory for a .csv file', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tocsin-csv-'));
    try {
      const file = path.join(dir, 'customers.csv');
      writeFileSync(file, VALID);

      const directory = await loadDirectory(file);

      expect(Array.from(directory.people, (person) => person.id)).toEqual(['ada', 'bert', 'kim']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a large CSV directory, packed', () => {
  const people = Array.from({ length: 2_000 }, (_, index) => {
    const role = index % 3 === 0 ? 'oncall' : 'staff';
    const tags = index % 10 === 0 ? 'key-customer' : '';
    return `p${index},Person ${index},+1202${String(5_000_000 + index).padStart(7, '0')},,${role},,${tags}`;
  });
  // A name that reads like somebody else's number, and one with quotes, a comma and a line break.
  people.push('lookalike,+12025000007,+12025559999,,staff,,');
  people.push('odd,"Odd ""Name"",\nSecond",,odd@example.com,staff,ops,');
  const directory = parseCsvDirectory(
    `id,name,phone,email,roles,groups,tags\n${people.join('\n')}\n`,
    'people.csv',
  );

  it('reads every person in file order, each made when read', () => {
    expect(directory.people.length).toBe(2_002);
    expect(directory.people.at(7)).toEqual({
      id: 'p7',
      name: 'Person 7',
      phone: '+12025000007',
      locale: 'en',
      timeZone: 'UTC',
      roles: ['staff'],
      groups: [],
      tags: [],
    });
    expect(directory.people.at(2_002)).toBeUndefined();
    // Indexes as an array reads them: negative from the end, fractions truncated.
    expect(directory.people.at(-1)?.id).toBe('odd');
    expect(directory.people.at(-2_003)).toBeUndefined();
    expect(directory.people.at(7.9)?.id).toBe('p7');
    expect(directory.people.slice(-2).map((person) => person.id)).toEqual(['lookalike', 'odd']);
    expect(directory.people.slice(1.5, 3).map((person) => person.id)).toEqual(['p1', 'p2']);
    expect(directory.people.slice(0, -2_001).map((person) => person.id)).toEqual(['p0']);
    expect(directory.people.map((person, index) => `${index}:${person.id}`)[3]).toBe('3:p3');
    expect(directory.people.slice(1_998, 2_000).map((person) => person.id)).toEqual([
      'p1998',
      'p1999',
    ]);
    expect(Array.from(directory.people, (person) => person.id).at(-1)).toBe('odd');
    expect(directory.people.at(2_001)).toMatchObject({
      name: 'Odd "Name",\nSecond',
      email: 'odd@example.com',
    });
    // As JSON it is the people, as an array would be, not the packed text.
    expect((JSON.parse(JSON.stringify(directory)) as { people: unknown[] }).people[7]).toEqual(
      directory.people.at(7),
    );
  });

  it('refuses control characters, which could merge or split records', () => {
    expect(problemsOf('id,name,phone,roles\nada,"Ada\u001eB",+12025550101,a\u001fb\n')).toEqual([
      expect.objectContaining({
        line: 2,
        col: 5,
        message: expect.stringContaining('name holds a control character') as unknown,
      }),
      expect.objectContaining({
        line: 2,
        col: 26,
        message: expect.stringContaining('roles holds') as unknown,
      }),
    ]);
  });

  it('selects an audience by roles, groups and tags without making anybody', () => {
    const oncall = selectPeople(directory, { roles: ['oncall'] });
    expect(oncall.length).toBe(667);
    expect(oncall.slice(0, 3).map((person) => person.id)).toEqual(['p0', 'p3', 'p6']);
    const mixed = selectPeople(directory, { groups: ['ops'], tags: ['key-customer'] });
    expect(Array.from(mixed, (person) => person.id)).toEqual([
      ...Array.from({ length: 200 }, (_, index) => `p${index * 10}`),
      'odd',
    ]);
    expect(selectPeople(directory, { roles: ['nobody'] }).length).toBe(0);
    expect(heldRoles(directory)).toEqual(new Set(['oncall', 'staff']));
  });

  it('finds a person by id and by address, not by a name that looks the same', () => {
    expect(findPerson(directory, 'p1234')?.name).toBe('Person 1234');
    expect(findPerson(directory, 'p123')?.name).toBe('Person 123');
    expect(findPerson(directory, 'p20000')).toBeUndefined();
    expect(findPerson(directory, '')).toBeUndefined();
    expect(findPersonByAddress(directory, 'sms', '+12025000007')?.id).toBe('p7');
    expect(findPersonByAddress(directory, 'whatsapp', '+12025559999')?.id).toBe('lookalike');
    expect(findPersonByAddress(directory, 'email', 'odd@example.com')?.id).toBe('odd');
    expect(findPersonByAddress(directory, 'sms', '+19999999999')).toBeUndefined();
    expect(findPersonByAddress(directory, 'sms', '+12025000007\u001f')).toBeUndefined();
  });
});
