import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import {
  parsePlaybook,
  PlaybookSyntaxError,
  PlaybookValidationError,
  validatePlaybookText,
} from '../../src/index.js';
import type { ErrorCode, Problem } from '../../src/index.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const INVALID = 'test/fixtures/playbooks/invalid';
const VALID_MINIMAL = 'test/fixtures/playbooks/valid-minimal.yaml';

/** A fixture in `invalid/`, its one problem, and where it is, worked out by hand. */
type InvalidCase = [file: string, code: ErrorCode, line: number, col: number];

// Each fixture is valid-minimal.yaml with one change; its first line says which.
const CASES: InvalidCase[] = [
  ['yaml-syntax.yaml', 'E_PLAYBOOK_SYNTAX', 28, 24],
  ['duplicate-key.yaml', 'E_PLAYBOOK_DUPLICATE_KEY', 31, 5],
  ['wrong-api-version.yaml', 'E_PLAYBOOK_SCHEMA', 2, 13],
  ['missing-required-key.yaml', 'E_PLAYBOOK_SCHEMA', 19, 5],
  ['unexpected-key.yaml', 'E_PLAYBOOK_SCHEMA', 7, 3],
  ['bad-enum-channel.yaml', 'E_PLAYBOOK_SCHEMA', 20, 21],
  ['stage-with-after-and-on.yaml', 'E_PLAYBOOK_SCHEMA', 33, 5],
  ['bad-default-type.yaml', 'E_PLAYBOOK_BAD_DEFAULT', 15, 38],
  ['trigger-unknown-variable.yaml', 'E_PLAYBOOK_UNKNOWN_VARIABLE', 12, 7],
  ['unset-variable.yaml', 'E_PLAYBOOK_UNSET_VARIABLE', 9, 5],
  ['duplicate-stage-id.yaml', 'E_PLAYBOOK_DUPLICATE_ID', 36, 9],
  ['unknown-audience.yaml', 'E_PLAYBOOK_UNKNOWN_AUDIENCE', 28, 25],
  ['unknown-audience-in-messages.yaml', 'E_PLAYBOOK_UNKNOWN_AUDIENCE', 41, 5],
  ['unknown-stage-in-messages.yaml', 'E_PLAYBOOK_UNKNOWN_STAGE', 52, 3],
  ['bad-duration.yaml', 'E_PLAYBOOK_BAD_DURATION', 30, 12],
  ['unreachable-stage.yaml', 'E_PLAYBOOK_UNREACHABLE_STAGE', 35, 5],
  ['missing-message.yaml', 'E_PLAYBOOK_MISSING_MESSAGE', 42, 5],
  ['missing-message-for-stage.yaml', 'E_PLAYBOOK_MISSING_MESSAGE', 33, 9],
  ['unknown-variable-in-template.yaml', 'E_PLAYBOOK_UNKNOWN_VARIABLE', 40, 38],
  ['unknown-variable-in-block-template.yaml', 'E_PLAYBOOK_UNKNOWN_VARIABLE', 48, 14],
  ['unknown-template-root.yaml', 'E_PLAYBOOK_UNKNOWN_VARIABLE', 51, 26],
  ['liquid-syntax.yaml', 'E_TEMPLATE_SYNTAX', 51, 21],
  // liquidjs places an unknown filter at the start of its output ({{), not at the filter name.
  ['unknown-filter.yaml', 'E_TEMPLATE_SYNTAX', 51, 23],
  ['endless-stage.yaml', 'E_PLAYBOOK_ENDLESS_STAGE', 32, 5],
  ['sensitive-variable-over-sms.yaml', 'E_PLAYBOOK_SENSITIVE_CHANNEL', 41, 61],
  ['sensitive-variable-to-audience.yaml', 'E_PLAYBOOK_SENSITIVE_AUDIENCE', 47, 69],
  ['sms-too-long.yaml', 'E_PLAYBOOK_SMS_TOO_LONG', 43, 12],
  ['whatsapp-without-template.yaml', 'E_PLAYBOOK_WHATSAPP_NO_TEMPLATE', 41, 7],
  ['enum-default-not-a-value.yaml', 'E_PLAYBOOK_BAD_DEFAULT', 15, 60],
  ['approval-on-closing-stage.yaml', 'E_PLAYBOOK_BAD_APPROVAL', 35, 5],
  ['approval-policy-without-timeout.yaml', 'E_PLAYBOOK_BAD_APPROVAL', 32, 33],
  ['approval-timed-out-without-escalation.yaml', 'E_PLAYBOOK_UNREACHABLE_STAGE', 36, 24],
  ['dedupe-key-on-alertmanager.yaml', 'E_PLAYBOOK_BAD_TRIGGER', 10, 5],
  ['business-hours-not-set.yaml', 'E_PLAYBOOK_BAD_HOURS', 32, 5],
  ['whole-vars-map.yaml', 'E_PLAYBOOK_UNKNOWN_VARIABLE', 40, 16],
  ['repeat-too-often.yaml', 'E_PLAYBOOK_BAD_DURATION', 32, 12],
  ['ack-timeout-after-escalation.yaml', 'E_PLAYBOOK_ACK_TIMEOUT', 28, 17],
  ['ack-timeout-on-closing-stage.yaml', 'E_PLAYBOOK_ACK_TIMEOUT', 35, 5],
  ['ack-timed-out-without-timeout.yaml', 'E_PLAYBOOK_UNREACHABLE_STAGE', 37, 9],
  // yaml counts 10 uses of &l2, each worth 11 values, at the ninth *l2: past the limit of 100.
  ['alias-bomb.yaml', 'E_PLAYBOOK_TOO_MANY_ALIASES', 26, 56],
  // Templates are checked in every locale, not only in the playbook's main one.
  ['unknown-variable-in-locale.yaml', 'E_PLAYBOOK_UNKNOWN_VARIABLE', 43, 42],
  ['liquid-syntax-in-locale.yaml', 'E_TEMPLATE_SYNTAX', 54, 24],
];

/**
 * Fixtures for locations that were once reported wrong (found while writing this corpus); each
 * has its own test below.
 */
const LOCATION_REGRESSIONS = [
  'undefined-alias.yaml',
  'unknown-variable-after-escaped-quote.yaml',
  'unknown-variable-after-double-quoted-escapes.yaml',
  'unknown-variable-in-folded-template.yaml',
  'unknown-variable-after-blank-line-in-block-template.yaml',
];

describe('validatePlaybookText', () => {
  it('finds no problems in the minimal valid playbook', () => {
    const problems = validatePlaybookText(readFixture(VALID_MINIMAL), VALID_MINIMAL);

    expect(problems).toEqual([]);
  });

  it.each(CASES)('reports the one problem in %s as %s at %i:%i', (file, code, line, col) => {
    expectOneProblem(file, code, line, col);
  });

  it('has a case for every fixture in the invalid corpus', () => {
    const listed = [...CASES.map(([file]) => file), ...LOCATION_REGRESSIONS].sort();

    const onDisk = readdirSync(path.join(ROOT, INVALID))
      .filter((name) => name.endsWith('.yaml'))
      .sort();

    expect(listed).toEqual(onDisk);
  });

  it('reports a file over 1 MiB at 1:1, with its size and the limit', () => {
    const text = `${readFixture(VALID_MINIMAL)}# ${'x'.repeat(1024 * 1024)}\n`;
    const bytes = Buffer.byteLength(text);

    const problems = validatePlaybookText(text, 'large.yaml');

    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({
      code: 'E_PLAYBOOK_TOO_LARGE',
      location: { file: 'large.yaml', line: 1, col: 1 },
    });
    expect(problems[0]?.message).toContain(`${bytes} bytes`);
    expect(problems[0]?.message).toContain('1048576');
  });

  it('accepts a file of exactly 1 MiB', () => {
    const minimal = readFixture(VALID_MINIMAL);
    const padding = 1024 * 1024 - Buffer.byteLength(minimal) - '# \n'.length;
    const text = `${minimal}# ${'x'.repeat(padding)}\n`;

    const problems = validatePlaybookText(text, 'exactly-1-mib.yaml');

    expect(Buffer.byteLength(text)).toBe(1024 * 1024);
    expect(problems).toEqual([]);
  });

  // Regression: an alias without an anchor was reported as "too many aliases" at 1:1.
  it('names the key that a mapping has twice', () => {
    const file = `${INVALID}/duplicate-key.yaml`;

    const [problem] = validatePlaybookText(readFixture(file), file);

    expect(problem?.message).toContain('this mapping has the key "after" twice');
  });

  it('reports the line and column of an alias without an anchor', () => {
    expectOneProblem('undefined-alias.yaml', 'E_PLAYBOOK_SYNTAX', 20, 15);
  });

  // Regression: each '' (or \") before the variable moved the reported column one to the left.
  it('reports the column of an undeclared variable after an escaped quote', () => {
    expectOneProblem(
      'unknown-variable-after-escaped-quote.yaml',
      'E_PLAYBOOK_UNKNOWN_VARIABLE',
      51,
      32,
    );
  });

  // Regression: \u, \t and \" escapes in double quotes moved the location to the next line.
  it('reports the column of an undeclared variable after double-quoted escapes', () => {
    expectOneProblem(
      'unknown-variable-after-double-quoted-escapes.yaml',
      'E_PLAYBOOK_UNKNOWN_VARIABLE',
      51,
      37,
    );
  });

  // Regression: a folded scalar (>-) reached Liquid as one line, so this was reported at 52:69.
  it('reports the line of an undeclared variable on the second line of a folded template', () => {
    expectOneProblem(
      'unknown-variable-in-folded-template.yaml',
      'E_PLAYBOOK_UNKNOWN_VARIABLE',
      53,
      21,
    );
  });

  // Regression: a leading blank line in a literal block moved every line down by one (50:14).
  it('reports the line of an undeclared variable in a block template that opens with a blank line', () => {
    expectOneProblem(
      'unknown-variable-after-blank-line-in-block-template.yaml',
      'E_PLAYBOOK_UNKNOWN_VARIABLE',
      49,
      14,
    );
  });
});

describe('parsePlaybook', () => {
  it('returns the stages of the minimal valid playbook', () => {
    const playbook = parsePlaybook(readFixture(VALID_MINIMAL), VALID_MINIMAL);

    expect(playbook.name).toBe('valid-minimal');
    expect(playbook.stages.map((stage) => stage.id)).toEqual(['page', 'escalate', 'all-clear']);
  });

  it('throws a PlaybookSyntaxError when the YAML does not parse', () => {
    const name = `${INVALID}/yaml-syntax.yaml`;

    const parse = (): unknown => parsePlaybook(readFixture(name), name);

    expect(parse).toThrow(PlaybookSyntaxError);
  });

  it('throws a PlaybookValidationError that lists the problem', () => {
    const name = `${INVALID}/unknown-audience.yaml`;

    const error = catchError(() => parsePlaybook(readFixture(name), name));

    expect(error).toBeInstanceOf(PlaybookValidationError);
    const problems = (error as PlaybookValidationError).problems;
    expect(problems.map((problem) => problem.code)).toEqual(['E_PLAYBOOK_UNKNOWN_AUDIENCE']);
  });
});

describe('stage offsets', () => {
  it('reads an ISO 8601 duration such as PT15M as 15 minutes', () => {
    const text = readFixture(VALID_MINIMAL).replace('    after: 15m\n', '    after: PT15M\n');

    const playbook = parsePlaybook(text, 'iso-offset.yaml');

    const escalate = playbook.stages.find((stage) => stage.id === 'escalate');
    expect(text).toContain('after: PT15M');
    expect(escalate?.kind).toBe('timed');
    expect(escalate?.kind === 'timed' ? escalate.after.toMillis() : undefined).toBe(15 * 60_000);
  });
});

describe('example playbooks', () => {
  const examples = readdirSync(path.join(ROOT, 'playbooks')).filter((name) =>
    /\.ya?ml$/.test(name),
  );

  it('includes at least one playbook', () => {
    expect(examples.length).toBeGreaterThan(0);
  });

  it.each(examples)('loads playbooks/%s without problems', (name) => {
    const file = `playbooks/${name}`;

    const problems = validatePlaybookText(readFixture(file), file);

    expect(problems).toEqual([]);
  });
});

function readFixture(relativePath: string): string {
  return readFileSync(path.join(ROOT, relativePath), 'utf8');
}

function expectOneProblem(file: string, code: ErrorCode, line: number, col: number): void {
  const name = `${INVALID}/${file}`;

  const problems: Problem[] = validatePlaybookText(readFixture(name), name);

  expect(problems).toHaveLength(1);
  expect(problems[0]).toMatchObject({ code, location: { file: name, line, col } });
}

function catchError(action: () => unknown): unknown {
  try {
    action();
  } catch (error) {
    return error;
  }
  throw new Error('expected the action to throw');
}

describe('acknowledgement timeouts against escalations', () => {
  const base = readFixture(VALID_MINIMAL);
  const withStages = (page: string, escalate: string): Problem[] => {
    const text = base
      .replace('  - id: page\n    after: 0m\n', `  - id: page\n${page}`)
      .replace('  - id: escalate\n    after: 15m\n', `  - id: escalate\n${escalate}`)
      .replace('hours: null', '');
    return validatePlaybookText(text, 'ack.yaml');
  };
  const codes = (problems: Problem[]): string[] => problems.map((problem) => problem.code);

  it('accepts a timeout that ends exactly when the escalation is due', () => {
    expect(withStages('    after: 0m\n    ackTimeout: 15m\n', '    after: 15m\n')).toEqual([]);
  });

  it.each([
    [
      'the escalation is due together with the page',
      '    after: 5m\n    ackTimeout: 10m\n',
      '    after: 5m\n',
      'together',
    ],
    [
      'a repeat of an earlier escalation comes first',
      '    after: 10m\n    ackTimeout: 30m\n',
      '    after: 5m\n    every: 10m\n    until: resolved\n',
      'due at +15m',
    ],
    [
      'the page may wait for its approval',
      '    after: 0m\n    ackTimeout: 10m\n    approval: { roles: [oncall], timeout: 30m, onTimeout: send }\n',
      '    after: 15m\n',
      'up to 30m for its approval',
    ],
  ])('reports the timeout when %s', (_, page, escalate, phrase) => {
    const problems = withStages(page, escalate);

    expect(codes(problems)).toEqual(['E_PLAYBOOK_ACK_TIMEOUT']);
    expect(problems[0]?.message).toContain(phrase);
  });
});

describe('template names that render nothing', () => {
  const base = readFixture(VALID_MINIMAL);
  const withSms = (sms: string): Problem[] =>
    validatePlaybookText(
      base.replace(
        "sms: '[{{ vars.severity }}] {{ vars.summary }}. Incident {{ incident.id }}.'",
        `sms: '${sms}'`,
      ),
      'names.yaml',
    );

  it.each([
    ['{{ recipient.name.first }}', 'single value with no fields'],
    ['{{ vars.summary.text }}', 'single value with no fields'],
    ['{{ incident }}', 'as a whole'],
    ['{{ stage.ackBy }}', 'has no ackTimeout'],
    ['{{ stage.nextAt }}', 'does not repeat'],
  ])('reports %s', (template, phrase) => {
    const problems = withSms(`Page ${template}`);

    expect(problems.map((problem) => problem.code)).toEqual(['E_PLAYBOOK_UNKNOWN_VARIABLE']);
    expect(problems[0]?.message).toContain(phrase);
  });
});
