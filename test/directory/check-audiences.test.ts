import { readFileSync } from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { checkAudiences, parseDirectory, parsePlaybook } from '../../src/index.js';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const FILE = 'test/fixtures/playbooks/valid-minimal.yaml';
const playbook = parsePlaybook(readFileSync(path.join(ROOT, FILE), 'utf8'), FILE);

function directory(people: string): ReturnType<typeof parseDirectory> {
  return parseDirectory(
    `apiVersion: tocsin/v1\nkind: Directory\npeople:\n${people}`,
    'people.yaml',
  );
}

describe('checkAudiences', () => {
  it('finds nothing when every audience selects somebody who reads the playbook locale', () => {
    const people = directory(`  - { id: a, name: A, phone: '+12025550101', roles: [oncall] }
  - { id: b, name: B, email: b@example.com, groups: [it-management], locale: en-GB }
`);

    expect(checkAudiences(playbook, people)).toEqual([]);
  });

  it('reports an audience that selects nobody at its key', () => {
    const people = directory(`  - { id: a, name: A, phone: '+12025550101', roles: [oncall] }\n`);

    expect(checkAudiences(playbook, people)).toEqual([
      expect.objectContaining({
        code: 'E_PLAYBOOK_EMPTY_AUDIENCE',
        location: { file: FILE, line: 21, col: 3 },
      }),
    ]);
  });

  it('reports each message without a translation for a locale its people read', () => {
    const people =
      directory(`  - { id: a, name: A, phone: '+12025550101', roles: [oncall], locale: de-AT }
  - { id: b, name: B, email: b@example.com, groups: [it-management] }
`);

    const problems = checkAudiences(playbook, people);

    expect(
      problems.map((problem) => [problem.code, problem.location.line, problem.location.col]),
    ).toEqual([
      ['E_PLAYBOOK_MISSING_TRANSLATION', 39, 5],
      ['E_PLAYBOOK_MISSING_TRANSLATION', 50, 5],
    ]);
    expect(problems[0]?.message).toContain('"de-AT"');
  });

  it('reports an approval gate that fewer people can pass than its quorum needs', () => {
    const gated = parsePlaybook(
      readFileSync(path.join(ROOT, FILE), 'utf8').replace(
        '    unless: acknowledged\n',
        '    unless: acknowledged\n    approval: { roles: [legal], quorum: 2 }\n',
      ),
      FILE,
    );
    const people = directory(`  - { id: a, name: A, phone: '+12025550101', roles: [oncall, legal] }
  - { id: b, name: B, email: b@example.com, groups: [it-management] }
`);

    expect(checkAudiences(gated, people)).toEqual([
      expect.objectContaining({
        code: 'E_PLAYBOOK_NO_APPROVERS',
        location: { file: FILE, line: 32, col: 5 },
      }),
    ]);
  });

  it('reports a role that nobody in the directory holds, at the role', () => {
    const people = directory(`  - { id: a, name: A, phone: '+12025550101', roles: [on-call] }
  - { id: b, name: B, email: b@example.com, groups: [it-management] }
`);

    const problems = checkAudiences(playbook, people);

    expect(
      problems.map((problem) => [problem.code, problem.location.line, problem.location.col]),
    ).toEqual([
      ['E_PLAYBOOK_EMPTY_AUDIENCE', 18, 3],
      ['E_PLAYBOOK_UNKNOWN_ROLE', 19, 23],
    ]);
  });

  it('reports people an audience cannot reach on any of its channels', () => {
    const people = directory(`  - { id: a, name: A, phone: '+12025550101', roles: [oncall] }
  - { id: b, name: B, email: b@example.com, roles: [oncall] }
  - { id: c, name: C, email: c@example.com, groups: [it-management] }
`);

    expect(checkAudiences(playbook, people)).toEqual([
      expect.objectContaining({
        code: 'E_PLAYBOOK_UNREACHABLE_PEOPLE',
        location: { file: FILE, line: 20, col: 5 },
      }),
    ]);
  });

  it('names ten unreachable people and counts the rest', () => {
    const unreachable = Array.from(
      { length: 12 },
      (_, index) => `  - { id: u${index}, name: U, email: u${index}@example.com, roles: [oncall] }`,
    );
    const people = directory(`  - { id: a, name: A, phone: '+12025550101', roles: [oncall] }
  - { id: c, name: C, email: c@example.com, groups: [it-management] }
${unreachable.join('\n')}
`);

    const [problem] = checkAudiences(playbook, people);

    expect(problem?.message).toMatch(
      /^audience "\S+" selects "u0", "u1", .*"u9" and 2 more, who have no address/,
    );
  });
});
