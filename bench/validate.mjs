// How long `tocsin validate` takes over 100 playbooks, wall time from process start to exit,
// median of RUNS runs (default 9). The playbooks are copies of the examples with their own names.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..');
const COUNT = Number(process.env.PLAYBOOKS ?? 100);
const RUNS = Number(process.env.RUNS ?? 9);

const examples = readdirSync(path.join(ROOT, 'playbooks')).filter((name) => name.endsWith('.yaml'));
const dir = mkdtempSync(path.join(tmpdir(), 'tocsin-bench-validate-'));
const folder = path.join(dir, 'playbooks');
mkdirSync(folder);
for (let i = 0; i < COUNT; i++) {
  const source = examples[i % examples.length];
  const text = readFileSync(path.join(ROOT, 'playbooks', source), 'utf8');
  writeFileSync(
    path.join(folder, `copy-${i}.yaml`),
    text.replace(/^ {2}name: (.+)$/m, `  name: $1-${i}`),
  );
}

const times = [];
for (let run = 0; run < RUNS; run++) {
  const started = process.hrtime.bigint();
  const output = execFileSync(
    process.execPath,
    [path.join(ROOT, 'bin/tocsin.js'), 'validate', folder],
    {
      encoding: 'utf8',
    },
  );
  times.push(Number(process.hrtime.bigint() - started) / 1e6);
  if (!output.includes(`${COUNT === 1 ? '1 file' : `${COUNT} files`} checked, no problems`))
    throw new Error(`unexpected output: ${output}`);
}
rmSync(dir, { recursive: true, force: true });

times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)];
console.log(
  `tocsin validate, ${COUNT} playbooks: median ${median.toFixed(0)} ms over ${RUNS} runs (min ${times[0].toFixed(0)}, max ${times.at(-1).toFixed(0)})`,
);
