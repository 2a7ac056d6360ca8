import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const INVALID = 'test/fixtures/playbooks/invalid';
const VALID_COPY = 'test/fixtures/playbooks/same-name-as-example.yaml';
const FIRING = 'test/fixtures/webhooks/alertmanager-firing.json';

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

  it('checks a CSV directory on its own, naming the line and column of a bad field', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tocsin-validate-csv-'));
    const good = path.join(dir, 'people.csv');
    const bad = path.join(dir, 'bad.csv');
    writeFileSync(good, 'id,name,phone\nada,Ada,+12025550101\n');
    writeFileSync(bad, 'id,name,phone\nada,Ada,0171 555\n');

    const clean = await runCli(['validate', good]);
    const broken = await runCli(['validate', bad]);
    rmSync(dir, { recursive: true, force: true });

    expect(clean.exitCode).toBe(0);
    expect(broken.exitCode).toBe(1);
    expect(broken.stdout).toContain(`${bad}:2:9  E_PLAYBOOK_SCHEMA`);
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
    // The corpus files are variants of one playbook and share its name; that is reported too.
    const ownProblems = parsed.files.map((entry) => ({
      file: entry.file,
      problems: entry.problems.filter((problem) => problem.code !== 'E_PLAYBOOK_DUPLICATE_NAME'),
    }));
    expect(ownProblems.filter((entry) => entry.problems.length !== 1)).toEqual([]);
  });

  it("reports two playbooks with the same name at the second one's metadata.name", async () => {
    const result = await runCli([
      'validate',
      'playbooks/instance-down.yaml',
      'test/fixtures/playbooks/e2e-escalation.yaml',
      VALID_COPY,
    ]);

    expect(result.exitCode).toBe(1);
    expect(result.stdout).toContain(`${VALID_COPY}:6:9  E_PLAYBOOK_DUPLICATE_NAME`);
  });

  it('exits 2 when a folder holds no YAML and counts a file named twice once', async () => {
    const empty = await runCli(['validate', 'docs']);
    const twice = await runCli(['validate', 'playbooks', 'playbooks/instance-down.yaml']);

    expect(empty.exitCode).toBe(2);
    expect(empty.stderr).toContain('no *.yaml or *.yml files in docs');
    expect(twice.stdout).toBe(
      `${readdirSync(path.join(ROOT, 'playbooks')).length} files checked, no problems\n`,
    );
  });

  it('says so when a file of another kind is given', async () => {
    const result = await runCli(['simulate', 'examples/directory.yaml', '--trigger', FIRING]);

    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('this is a Directory, not a Playbook');
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
