// Tocsin's benchmarks, in one run (see bench/README.md): fan-out to 10,000 and 100,000
// recipients against the Twilio stand-in in its own process, the ceiling of a bare client on
// the same stand-in, Apprise where installed, trigger-to-first-message latency, peak memory,
// a 24-hour simulation, and the start-up of `tocsin validate`. Prints a table and writes
// bench/results/latest.json.
//
//   npm run bench                 everything
//   BENCH_SIZES=10000 npm run bench   fewer fan-out sizes (comma list)
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';

import { Pool } from 'undici';

const ROOT = path.resolve(import.meta.dirname, '..');
const BIN = path.join(ROOT, 'bin', 'tocsin.js');
const TOKEN = 'bench-token-5e1f';
const ENV = {
  TOCSIN_TOKEN: TOKEN,
  TWILIO_AUTH_TOKEN: 'sandbox-auth-token',
  TOCSIN_LOG_LEVEL: 'warn',
};
const CONCURRENCY = 64;
const SIZES = (process.env.BENCH_SIZES ?? '10000,100000').split(',').map(Number);
const FIRST_MESSAGE_RUNS = Number(process.env.BENCH_FIRST_RUNS ?? 100);
const APPRISE_TARGETS = 1_000;
const work = mkdtempSync(path.join(tmpdir(), 'tocsin-bench-'));
const children = new Set();

const now = () => performance.timeOrigin + performance.now();

// The text every message carries, rendered by Tocsin and sent as-is by the bare client.
const SMS_TEMPLATE =
  '[{{ vars.severity | upcase }}] {{ vars.alertname }} on {{ vars.instance }}: {{ recipient.name }}, please check. Incident {{ incident.code }}';
const sampleBody = (i) =>
  `[CRITICAL] InstanceDown on localhost:8081: Person ${i}, please check. Incident 4821`;

function playbook({ every } = {}) {
  return `apiVersion: tocsin/v1
kind: Playbook
metadata: { name: bench, version: 1 }
triggers:
  - source: alertmanager
    variables:
      alertname: commonLabels.alertname
      instance: alerts.0.labels.instance
      severity: commonLabels.severity
variables:
  alertname: { type: string }
  instance: { type: string }
  severity: { type: string }
audiences:
  staff: { select: { roles: [staff] }, channels: [sms] }
stages:
  - id: page
    after: 0m
    audiences: [staff]
${every ? `  - { id: update, after: ${every}, every: ${every}, until: resolved, audiences: [staff] }\n` : ''}messages:
  page:
    staff: { sms: '${SMS_TEMPLATE}' }
${every ? `  update:\n    staff: { sms: 'Update {{ stage.occurrence }}: {{ vars.alertname }} on {{ vars.instance }} still open. Incident {{ incident.code }}' }\n` : ''}`;
}

function writeDirectory(file, count) {
  const lines = ['id,name,phone,roles'];
  for (let i = 0; i < count; i++) {
    lines.push(`p${i},Person ${i},+1202${String(5_000_000 + i).padStart(7, '0')},staff`);
  }
  writeFileSync(file, `${lines.join('\n')}\n`);
}

function startProcess(args, pattern, env = {}) {
  // BENCH_PROFILE=DIR writes a CPU profile of each `tocsin serve` there, to see what dominates.
  const profile =
    process.env.BENCH_PROFILE && args[0] === 'serve'
      ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`]
      : [];
  const child = spawn(process.execPath, [...profile, BIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return new Promise((resolve, reject) => {
    let output = '';
    const onData = (chunk) => {
      output += chunk.toString();
      const match = pattern.exec(output);
      if (match) {
        child.stdout.off('data', onData);
        child.stdout.resume();
        child.stderr.resume();
        resolve({ child, match });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (chunk) => (output += chunk.toString()));
    child.once('exit', (code) => reject(new Error(`tocsin ${args[0]} exited ${code}: ${output}`)));
  });
}

async function stop(child) {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

async function startSandbox() {
  const { child, match } = await startProcess(['sandbox', '--port', '0'], /^(\{.*"http".*\})$/m);
  return { child, info: JSON.parse(match[1]) };
}

async function startServe(name, sandbox, directoryFile, playbookText) {
  const dir = path.join(work, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'bench.yaml'), playbookText);
  const config = path.join(dir, 'tocsin.yaml');
  writeFileSync(
    config,
    [
      'apiVersion: tocsin/v1',
      'kind: Config',
      'database: ./tocsin.db',
      'playbooks: [./bench.yaml]',
      `directory: ${JSON.stringify(directoryFile)}`,
      'server: { host: 127.0.0.1, port: 0, token: { env: TOCSIN_TOKEN } }',
      `dispatch: { concurrency: ${CONCURRENCY} }`,
      'channels:',
      '  sms:',
      '    provider: twilio',
      `    baseUrl: ${sandbox.info.http}`,
      `    accountSid: ${sandbox.info.twilio.accountSid}`,
      '    authToken: { env: TWILIO_AUTH_TOKEN }',
      `    from: '${sandbox.info.twilio.from}'`,
      '    receipts: false',
      '',
    ].join('\n'),
  );
  const { child, match } = await startProcess(
    ['serve', '--config', config],
    /tocsin listening on (http:\/\/\S+)/,
    ENV,
  );
  return { child, url: match[1] };
}

async function stats(sandbox, nth) {
  const response = await fetch(`${sandbox.info.http}/sandbox/stats${nth ? `?nth=${nth}` : ''}`);
  return response.json();
}

async function waitForCount(sandbox, count, pollMs, timeoutMs = 15 * 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const current = await stats(sandbox);
    if (current.count >= count) return current;
    if (Date.now() > deadline)
      throw new Error(`only ${current.count} of ${count} messages arrived`);
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

let alertNumber = 0;
function alert() {
  const payload = JSON.parse(
    readFileSync(path.join(ROOT, 'test/fixtures/webhooks/alertmanager-firing.json'), 'utf8'),
  );
  payload.groupKey = `{}:{alertname="InstanceDown",bench="${++alertNumber}"}`;
  return JSON.stringify(payload);
}

async function trigger(url) {
  const response = await fetch(`${url}/hooks/alertmanager`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: alert(),
  });
  if (response.status !== 200) throw new Error(`trigger answered ${response.status}`);
}

/** Peak (VmHWM) or current (VmRSS) resident memory of a process, in MB. */
function peakRssMb(pid, field = 'VmHWM') {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0);
  return Math.round(kb / 1024);
}

async function fanOut(count, sandbox) {
  const directory = path.join(work, `people-${count}.csv`);
  writeDirectory(directory, count);
  const serve = await startServe(`fanout-${count}`, sandbox, directory, playbook());
  const before = (await stats(sandbox)).count;
  // Resident once started: Node, the modules and the directory loaded.
  const atStartMb = peakRssMb(serve.child.pid, 'VmRSS');
  const started = now();
  await trigger(serve.url);
  const done = await waitForCount(sandbox, before + count, 100);
  const seconds = (done.lastAtMs - started) / 1000;
  const peak = peakRssMb(serve.child.pid);
  await stop(serve.child);
  return { messages: count, seconds, perSecond: count / seconds, peakRssMb: peak, atStartMb };
}

/** A bare client: the same form POSTs to the same stand-in at the same concurrency. */
async function ceiling(count, sandbox) {
  const { http, twilio } = sandbox.info;
  const pool = new Pool(http, { connections: CONCURRENCY });
  const path_ = `/2010-04-01/Accounts/${twilio.accountSid}/Messages.json`;
  const authorization = `Basic ${Buffer.from(`${twilio.accountSid}:sandbox-auth-token`).toString('base64')}`;
  let next = 0;
  const started = now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < count) {
        const i = next++;
        const form = new URLSearchParams({
          To: `+1303${String(5_000_000 + i).padStart(7, '0')}`,
          Body: sampleBody(i),
          From: twilio.from,
        });
        const response = await pool.request({
          method: 'POST',
          path: path_,
          headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
          body: form.toString(),
        });
        await response.body.text();
        if (response.statusCode !== 201)
          throw new Error(`stand-in answered ${response.statusCode}`);
      }
    }),
  );
  const seconds = (now() - started) / 1000;
  await pool.close();
  return { messages: count, seconds, perSecond: count / seconds };
}

/** Apprise sending one notification to many json:// targets at the stand-in. */
async function apprise(sandbox) {
  const found = spawnSync('apprise', ['--version'], { encoding: 'utf8' });
  if (found.error || found.status !== 0)
    return { skipped: 'apprise is not installed (Debian package apprise)' };
  const port = new URL(sandbox.info.http).port;
  const config = path.join(work, 'apprise.txt');
  writeFileSync(
    config,
    Array.from(
      { length: APPRISE_TARGETS },
      (_, i) => `json://127.0.0.1:${port}/sandbox/json/t${i}`,
    ).join('\n'),
  );
  const before = (await stats(sandbox)).count;
  const started = now();
  const result = spawnSync('apprise', ['-c', config, '-b', sampleBody(0)], { encoding: 'utf8' });
  const seconds = (now() - started) / 1000;
  const received = (await stats(sandbox)).count - before;
  if (received !== APPRISE_TARGETS) {
    return {
      skipped: `apprise delivered ${received} of ${APPRISE_TARGETS} (exit ${result.status})`,
    };
  }
  return {
    messages: APPRISE_TARGETS,
    seconds,
    perSecond: APPRISE_TARGETS / seconds,
    version: found.stdout.split('\n')[0],
  };
}

async function firstMessage(sandbox) {
  const directory = path.join(work, 'people-1000.csv');
  writeDirectory(directory, 1_000);
  const serve = await startServe('first-message', sandbox, directory, playbook());
  const latencies = [];
  for (let run = 0; run < FIRST_MESSAGE_RUNS; run++) {
    const before = (await stats(sandbox)).count;
    const started = now();
    await trigger(serve.url);
    // The time is the one the stand-in recorded; polling gently keeps the bench off the CPU.
    await waitForCount(sandbox, before + 1, 20);
    const { nthAtMs } = await stats(sandbox, before + 1);
    latencies.push(nthAtMs - started);
    await waitForCount(sandbox, before + 1_000, 20);
  }
  await stop(serve.child);
  latencies.sort((a, b) => a - b);
  const at = (q) => latencies[Math.min(latencies.length - 1, Math.ceil(q * latencies.length) - 1)];
  return { runs: latencies.length, medianMs: at(0.5), p99Ms: at(0.99), maxMs: latencies.at(-1) };
}

function simulate24h() {
  const directory = path.join(work, 'people-10000.csv');
  writeDirectory(directory, 10_000);
  const file = path.join(work, 'simulate.yaml');
  writeFileSync(file, playbook({ every: '30m' }));
  const trigger_ = path.join(work, 'alert.json');
  writeFileSync(trigger_, alert());
  const started = now();
  execFileSync(
    process.execPath,
    [
      BIN,
      'simulate',
      file,
      '--directory',
      directory,
      '--trigger',
      trigger_,
      '--resolve-after',
      '24h',
      '--format',
      'json',
    ],
    { cwd: ROOT, maxBuffer: 512 * 1024 * 1024, stdio: ['ignore', 'ignore', 'inherit'] },
  );
  return { recipients: 10_000, hours: 24, seconds: (now() - started) / 1000 };
}

function validateStartup() {
  const times = [];
  for (let run = 0; run < 10; run++) {
    const started = now();
    execFileSync(process.execPath, [BIN, 'validate', 'playbooks/instance-down.yaml'], {
      cwd: ROOT,
    });
    times.push(now() - started);
  }
  times.sort((a, b) => a - b);
  return { runs: times.length, medianMs: (times[4] + times[5]) / 2 };
}

const round = (value, digits = 0) =>
  value === undefined || value === null ? null : Number(value.toFixed(digits));

async function main() {
  const machine = {
    cpus: `${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}`,
    memoryGb: round(totalmem() / 2 ** 30, 1),
    node: process.version,
    date: new Date().toISOString(),
  };
  const sandbox = await startSandbox();
  const results = { machine, concurrency: CONCURRENCY };
  try {
    // A cold stand-in answers slower until the JIT has warmed it; neither run should pay that.
    await ceiling(5_000, sandbox);
    for (const size of SIZES) {
      const key = size === 100_000 ? 'fanout100k' : size === 10_000 ? 'fanout10k' : `fanout${size}`;
      process.stderr.write(`fan-out to ${size}: ceiling...\n`);
      const before = await ceiling(size, sandbox);
      process.stderr.write(`fan-out to ${size}: tocsin...\n`);
      const tocsin = await fanOut(size, sandbox);
      process.stderr.write(`fan-out to ${size}: ceiling again...\n`);
      const after = await ceiling(size, sandbox);
      // The ceiling is the mean of the runs just before and just after Tocsin's.
      const bare = { perSecond: (before.perSecond + after.perSecond) / 2 };
      results[key] = {
        messages: size,
        seconds: round(tocsin.seconds, 2),
        perSecond: round(tocsin.perSecond),
        ceilingPerSecond: round(bare.perSecond),
        ratioToCeiling: round(tocsin.perSecond / bare.perSecond, 2),
        peakRssMb: tocsin.peakRssMb,
        rssAtStartMb: tocsin.atStartMb,
      };
    }
    process.stderr.write('apprise...\n');
    const peer = await apprise(sandbox);
    results.apprise = peer.skipped
      ? { skipped: peer.skipped }
      : {
          targets: peer.messages,
          seconds: round(peer.seconds, 2),
          perSecond: round(peer.perSecond),
          version: peer.version,
        };
    for (const key of ['fanout10k', 'fanout100k']) {
      if (results[key]) {
        results[key].timesApprise = peer.skipped
          ? null
          : round(results[key].perSecond / peer.perSecond, 1);
      }
    }
    process.stderr.write('first message...\n');
    const first = await firstMessage(sandbox);
    results.firstMessage = {
      recipients: 1_000,
      runs: first.runs,
      medianMs: round(first.medianMs, 1),
      p99Ms: round(first.p99Ms, 1),
      maxMs: round(first.maxMs, 1),
    };
  } finally {
    await stop(sandbox.child);
  }
  process.stderr.write('simulate...\n');
  const simulation = simulate24h();
  results.simulate24h = {
    recipients: simulation.recipients,
    seconds: round(simulation.seconds, 2),
  };
  process.stderr.write('validate start-up...\n');
  results.validateStartup = { runs: 10, medianMs: round(validateStartup().medianMs) };

  const resultsDir = path.join(ROOT, 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  // A run with other sizes or fewer runs than the defaults does not replace the reference.
  const isPartial =
    process.env.BENCH_SIZES !== undefined || process.env.BENCH_FIRST_RUNS !== undefined;
  const output = isPartial ? 'partial.json' : 'latest.json';
  writeFileSync(path.join(resultsDir, output), `${JSON.stringify(results, null, 2)}\n`);
  printTable(results);
}

function printTable(results) {
  const rows = [];
  for (const key of Object.keys(results).filter((name) => name.startsWith('fanout'))) {
    const r = results[key];
    rows.push([
      `fan-out ${r.messages.toLocaleString('en')}`,
      `${r.perSecond}/s`,
      `${Math.round(r.ratioToCeiling * 100)}% of ceiling (${r.ceilingPerSecond}/s)`,
      r.timesApprise === null || r.timesApprise === undefined
        ? 'Apprise: n/a'
        : `${r.timesApprise}× Apprise`,
      `peak RSS ${r.peakRssMb} MB`,
    ]);
  }
  rows.push([
    'Apprise, 1,000 json://',
    results.apprise.skipped ? 'skipped' : `${results.apprise.perSecond}/s`,
    results.apprise.skipped ?? results.apprise.version ?? '',
    '',
    '',
  ]);
  rows.push([
    'trigger → first request',
    `median ${results.firstMessage.medianMs} ms`,
    `p99 ${results.firstMessage.p99Ms} ms`,
    `${results.firstMessage.runs} runs, 1,000 recipients`,
    '',
  ]);
  rows.push(['simulate 24 h, 10,000 people', `${results.simulate24h.seconds} s`, '', '', '']);
  rows.push(['validate start-up', `median ${results.validateStartup.medianMs} ms`, '', '', '']);
  const widths = rows[0].map((_, column) =>
    Math.max(...rows.map((row) => String(row[column]).length)),
  );
  console.log(
    `Tocsin benchmarks on ${results.machine.cpus}, ${results.machine.memoryGb} GiB, Node ${results.machine.node}`,
  );
  for (const row of rows)
    console.log(
      row
        .map((cell, column) => String(cell).padEnd(widths[column]))
        .join('  ')
        .trimEnd(),
    );
  console.log(
    `written to bench/results/${process.env.BENCH_SIZES || process.env.BENCH_FIRST_RUNS ? 'partial' : 'latest'}.json`,
  );
}

try {
  await main();
} finally {
  for (const child of children) child.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
}
