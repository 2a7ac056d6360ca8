import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const INVALID = 'test/fixtures/playbooks/invalid';

interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

interface ValidateJson {
  files: { file: string; kind: string; problems: { code: string; location: unknown }[] }[];
  problemCount: number;
}

// These tests run the built CLI, as a user does; `npm test` builds before it runs vitest.
beforeAll(() => {
  const entry = path.join(ROOT, 'dist', 'runner', 'cli', 'main.js');
  if (!existsSync(entry)) throw new Error(`${entry} is missing; run "npm run build" first`);
});

describe('tocsin validate', () => {
  it('exits 0 on the example playbooks and directory', async () => {
    const result = await runCli(['validate', 'playbooks/', 'examples/directory.yaml']);

    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain('no problems');
  });

  it('exits 1 and prints file:line:col for an invalid playbook', async () => {
    const file = `${INVALID}/bad-duration.yaml`;

    const result = await runCli(['validate', file]);

    expect(result.exitCode).toBe(1);
    expect(result.stdout).toContain(`${file}:30:12  E_PLAYBOOK_BAD_DURATION`);
  });

  it('exits 2 on an unknown flag', async () => {
    const result = await runCli(['validate', '--no-such-flag', 'playbooks/']);

    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('--no-such-flag');
  });

  it('exits 2 when no path is given', async () => {
    const result = await runCli(['validate']);

    expect(result.exitCode).toBe(2);
  });

  it('prints a result that parses as JSON with --format json', async () => {
    const file = `${INVALID}/unknown-audience.yaml`;

    const result = await runCli(['validate', file, '--format', 'json']);

    expect(result.exitCode).toBe(1);
    const parsed = JSON.parse(result.stdout) as ValidateJson;
    expect(parsed.problemCount).toBe(1);
    expect(parsed.files[0]?.problems[0]).toMatchObject({
      code: 'E_PLAYBOOK_UNKNOWN_AUDIENCE',
      location: { file, line: 28, col: 25 },
    });
  });

  it('reports exactly one problem for each file of the invalid corpus', async () => {
    const fixtures = readdirSync(path.join(ROOT, INVALID)).filter((name) => name.endsWith('.yaml'));

    const result = await runCli(['validate', INVALID, '--format', 'json']);

    const parsed = JSON.parse(result.stdout) as ValidateJson;
    expect(result.exitCode).toBe(1);
    expect(parsed.files).toHaveLength(fixtures.length);
    expect(parsed.files.filter((entry) => entry.problems.length !== 1)).toEqual([]);
  });

  it('prints the location, code, message and an excerpt with a caret', async () => {
    const file = `${INVALID}/unknown-audience.yaml`;

    const result = await runCli(['validate', file]);

    expect(result.stdout).toBe(
      `${file}:28:25  E_PLAYBOOK_UNKNOWN_AUDIENCE
  stage "page" sends to audience "ops", which is not declared; declare it under audiences:, or use one of "oncall", "managers"

    27 |     after: 0m
  > 28 |     audiences: [oncall, ops]
       |                         ^
    29 |   - id: escalate

1 problem in 1 of 1 file
`,
    );
  });
});

function runCli(args: readonly string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['bin/tocsin.js', ...args],
      { cwd: ROOT },
      (error, stdout, stderr) => {
        const exitCode = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        resolve({ exitCode, stdout, stderr });
      },
    );
  });
}
