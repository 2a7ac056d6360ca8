import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { DateTime, Duration } from 'luxon';

import type { Engine } from '../../src/index.js';
import type { AuditExport } from '../audit.js';
import { UsageError } from '../errors.js';

// Heavy modules (ajv, xstate, liquidjs, better-sqlite3) load inside each command, so a command
// pays only for what it uses.

const program = new Command('tocsin')
  .description('Declarative incident communication: playbooks in YAML, sent over SMS and email.')
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

program
  .command('validate')
  .description('check playbooks, directories and service configs; exit 1 when a problem is found')
  .argument('<path...>', 'files or folders of *.yaml')
  .addOption(
    new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'),
  )
  .option('--directory <file>', 'also check audiences and translations against these people')
  .action(async (paths: string[], options: { format: 'text' | 'json'; directory?: string }) => {
    const { formatValidateText, validateFiles } = await import('./validate.js');
    const { loadDirectory } = await import('../../src/checks.js');
    const directory = options.directory ? await loadDirectory(options.directory) : undefined;
    const { result, texts } = await validateFiles(paths, directory ? { directory } : {});
    const output =
      options.format === 'json'
        ? JSON.stringify(result, null, 2)
        : formatValidateText(result, texts);
    process.stdout.write(`${output}\n`);
    process.exitCode = result.problemCount > 0 ? 1 : 0;
  });

program
  .command('simulate')
  .description('run a playbook on a virtual clock and print who is told what, when; sends nothing')
  .argument('<playbook>', 'playbook file')
  .requiredOption('--trigger <file>', 'webhook body that starts the incident (Alertmanager JSON)')
  .option('--directory <file>', 'directory of people (default: the example directory)')
  .addOption(
    new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'),
  )
  .option('--start <instant>', 'virtual start time, ISO 8601 (default: now)', parseInstant)
  .option(
    '--ack-after <duration>',
    'acknowledge this long after the start, e.g. 5m',
    parseDurationFlag,
  )
  .option(
    '--ack-by <person>',
    'who acknowledges (with --ack-after); several ids separated by commas',
  )
  .option(
    '--resolve-after <duration>',
    'resolve this long after the start, e.g. 2h',
    parseDurationFlag,
  )
  .option('--no-resolve', 'leave the incident open when the timeline ends')
  .option(
    '--approve-after <duration>',
    'approve each approval request this long after it is made',
    parseDurationFlag,
  )
  .option(
    '--approve-by <people>',
    'who approves (comma-separated person ids, with --approve-after)',
    (value: string) =>
      value
        .split(',')
        .map((id) => id.trim())
        .filter((id) => id !== ''),
  )
  .action(async (playbookFile: string, options: SimulateFlags) => {
    if (options.approveAfter !== undefined && (options.approveBy ?? []).length === 0) {
      throw new UsageError('--approve-after needs --approve-by: say who approves');
    }
    if (options.approveBy !== undefined && options.approveAfter === undefined) {
      throw new UsageError('--approve-by needs --approve-after: say when the approvals come');
    }
    if (options.ackBy !== undefined && options.ackAfter === undefined) {
      throw new UsageError('--ack-by needs --ack-after: say when the acknowledgement comes');
    }
    if (options.ackAfter && options.resolveAfter && options.ackAfter >= options.resolveAfter) {
      throw new UsageError(
        '--ack-after must come before --resolve-after; a resolved incident takes no acknowledgement',
      );
    }
    const path = await import('node:path');
    const { PACKAGE_ROOT } = await import('../config.js');
    const { formatSimulationText, simulate } = await import('./simulate.js');
    const result = await simulate({
      playbookFile,
      triggerFile: options.trigger,
      directoryFile: options.directory ?? path.join(PACKAGE_ROOT, 'examples', 'directory.yaml'),
      start: options.start ?? DateTime.utc().startOf('second'),
      resolveAtEnd: options.resolve,
      ...(options.ackAfter ? { ackAfter: options.ackAfter } : {}),
      ...(options.ackBy ? { ackBy: options.ackBy } : {}),
      ...(options.resolveAfter ? { resolveAfter: options.resolveAfter } : {}),
      ...(options.approveAfter
        ? { approveAfter: options.approveAfter, approveBy: options.approveBy ?? [] }
        : {}),
    });
    const output =
      options.format === 'json' ? JSON.stringify(result, null, 2) : formatSimulationText(result);
    process.stdout.write(`${output}\n`);
  });

program
  .command('serve')
  .description(
    'run the service: webhooks, API, timers and dispatch (default: sandbox with the examples)',
  )
  .option('--config <file>', 'service config (default: embedded sandbox config)')
  .option('--port <port>', 'HTTP port (0 picks a free one)', parsePort)
  .option('--host <host>', 'address to listen on')
  .option('--db <file>', 'SQLite database file')
  .action(async (options: { config?: string; port?: number; host?: string; db?: string }) => {
    const { loadServiceConfig } = await import('../config.js');
    const { createLogger } = await import('../logger.js');
    const { startService } = await import('../service.js');
    const config = await loadServiceConfig(options.config, process.env);
    if (options.port !== undefined) config.server.port = options.port;
    if (options.host !== undefined) config.server.host = options.host;
    if (options.db !== undefined) config.database = (await import('node:path')).resolve(options.db);

    const level = process.env.TOCSIN_LOG_LEVEL ?? 'info';
    if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(level)) {
      throw new UsageError(
        `TOCSIN_LOG_LEVEL is "${level}"; use debug, info, warn, error or silent`,
      );
    }
    const log = createLogger({ level });
    const service = await startService(config, log);
    process.stdout.write(
      `tocsin listening on ${service.url}${service.sandbox ? ` (sandbox; messages at ${service.url}/sandbox/messages)` : ''}\n`,
    );
    const lost = await Promise.race([waitForSignal().then(() => undefined), service.stopped]);
    log.info({}, 'service stopping');
    await service.close();
    if (lost) throw lost;
  });

const urlOption = [
  '--url <url>',
  'the running service (default http://127.0.0.1:8080); the token comes from TOCSIN_TOKEN',
] as const;
const dbOption = [
  '--db <file>',
  "act on the service's database file directly, while the service is down (sends nothing; the next tocsin serve does)",
] as const;
const configOption = [
  '--config <file>',
  'with --db: the service config naming the playbooks and directory (default: the embedded one)',
] as const;

/** `by` as given, once the directory knows it: the audit names people by directory id. */
function knownPerson(engine: Engine, by: string): string {
  if (!engine.hasPerson(by)) {
    throw new UsageError(`no person has id "${by}" in the directory; give a directory id`);
  }
  return by;
}

/** Prints an incident view, from the service's API or, with `--db`, from the database. */
async function act(
  options: { url?: string; db?: string; config?: string },
  direct: (engine: Engine) => string,
  method: 'GET' | 'POST',
  route: string,
  body?: unknown,
): Promise<void> {
  let view: unknown;
  if (options.db !== undefined && options.url !== undefined) {
    throw new UsageError('give either --db (the service is down) or --url (it runs), not both');
  }
  if (options.db !== undefined) {
    const { actOnDatabase } = await import('./direct.js');
    const target =
      options.config === undefined
        ? { db: options.db }
        : { db: options.db, config: options.config };
    view = await actOnDatabase(target, direct);
  } else {
    const { callApi, resolveTarget } = await import('./api-client.js');
    view = await callApi(resolveTarget(options.url, process.env), method, route, body);
  }
  process.stdout.write(`${JSON.stringify(view, null, 2)}\n`);
}

program
  .command('trigger')
  .description('start an incident of a playbook with a manual trigger, through the running service')
  .argument('<playbook>', 'playbook name')
  .requiredOption('--by <person>', 'who declares the incident (a person id with a declare role)')
  .option(
    '--var <name=value...>',
    'incident variables, e.g. --var system="file server FS-03"',
    collectVariables,
    {},
  )
  .option(...urlOption)
  .option(...dbOption)
  .option(...configOption)
  .action(
    async (
      playbook: string,
      options: {
        by: string;
        var: Record<string, string>;
        url?: string;
        db?: string;
        config?: string;
      },
    ) => {
      const request = { playbook, by: options.by, variables: options.var };
      await act(
        options,
        (engine) => engine.declare({ ...request, by: knownPerson(engine, request.by) }).id,
        'POST',
        '/api/incidents',
        request,
      );
    },
  );

for (const [name, description] of [
  ['ack', 'acknowledge an incident through the running service'],
  [
    'resolve',
    'resolve an incident through the running service: timers stop, resolution stages fire',
  ],
  [
    'cancel',
    'cancel an incident through the running service: timers stop, cancellation stages fire',
  ],
] as const) {
  program
    .command(name)
    .description(description)
    .argument('<incident>', 'incident id')
    .option('--by <person>', 'who does it (a person id)')
    .option(...urlOption)
    .option(...dbOption)
    .option(...configOption)
    .action(
      async (
        incident: string,
        options: { by?: string; url?: string; db?: string; config?: string },
      ) => {
        const direct = (engine: Engine): string => {
          const by = options.by === undefined ? 'cli' : knownPerson(engine, options.by);
          if (name === 'ack') engine.acknowledge(incident, by, 'cli');
          else if (name === 'resolve') engine.resolve(incident, by);
          else engine.cancel(incident, by);
          return incident;
        };
        const body = options.by === undefined ? {} : { by: options.by };
        const route = `/api/incidents/${encodeURIComponent(incident)}/${name}`;
        await act(options, direct, 'POST', route, body);
      },
    );
}

program
  .command('approve')
  .description('approve a stage waiting behind its approval gate, through the running service')
  .argument('<incident>', 'incident id')
  .argument('<stage>', 'stage id')
  .requiredOption('--by <person>', 'who approves (not the incident author)')
  .option(...urlOption)
  .option(...dbOption)
  .option(...configOption)
  .action(
    async (
      incident: string,
      stage: string,
      options: { by: string; url?: string; db?: string; config?: string },
    ) => {
      const route = `/api/incidents/${encodeURIComponent(incident)}/approve`;
      const direct = (engine: Engine): string => {
        engine.approve(incident, stage, knownPerson(engine, options.by));
        return incident;
      };
      await act(options, direct, 'POST', route, { stage, by: options.by });
    },
  );

program
  .command('status')
  .description('list incidents, or show one with its messages, from the running service')
  .argument('[incident]', 'incident id')
  .option(...urlOption)
  .option('--db <file>', "read the service's database file directly (read-only)")
  .action(async (incident: string | undefined, options: { url?: string; db?: string }) => {
    if (options.db !== undefined) {
      const { readFromDatabase } = await import('./direct.js');
      process.stdout.write(`${JSON.stringify(readFromDatabase(options.db, incident), null, 2)}\n`);
      return;
    }
    const { callApi, resolveTarget } = await import('./api-client.js');
    const target = resolveTarget(options.url, process.env);
    const route =
      incident === undefined ? '/api/incidents' : `/api/incidents/${encodeURIComponent(incident)}`;
    process.stdout.write(`${JSON.stringify(await callApi(target, 'GET', route), null, 2)}\n`);
  });

program
  .command('audit')
  .description(
    "export an incident's audit log: every transition, decision, approval, acknowledgement and message outcome",
  )
  .argument('<incident>', 'incident id')
  .addOption(
    new Option('--format <format>', 'output format').choices(['json', 'csv']).default('json'),
  )
  .option(...urlOption)
  .option('--db <file>', "read the service's database file directly instead of asking the service")
  .action(
    async (incident: string, options: { format: 'json' | 'csv'; url?: string; db?: string }) => {
      const { formatAuditCsv } = await import('../audit.js');
      const audit = options.db
        ? await readAuditFromDatabase(options.db, incident)
        : await readAuditFromService(options.url, incident);
      process.stdout.write(
        options.format === 'csv' ? formatAuditCsv(audit) : `${JSON.stringify(audit, null, 2)}\n`,
      );
    },
  );

program
  .command('sandbox')
  .description(
    'run the provider stand-ins alone (Twilio, Vonage, WhatsApp Cloud API, chat webhooks, SMTP) and record what they receive',
  )
  .option('--port <port>', 'HTTP port of the stand-ins and GET /sandbox/messages', parsePort)
  .option('--smtp-port <port>', 'SMTP port', parsePort)
  .option('--host <host>', 'address to listen on', '127.0.0.1')
  .option(
    '--faults <share>',
    'fail this share of sends (0 to 1) with throttles, 5xx, timeouts, resets and slow answers',
    parseShare,
  )
  .option(
    '--receipt-faults <share>',
    'make this share of receipts late, failed or lost',
    parseShare,
  )
  .option('--fault-seed <n>', 'seed of the fault choice, so a run can be repeated', parseCount, 1)
  .action(
    async (options: {
      port?: number;
      smtpPort?: number;
      host: string;
      faults?: number;
      receiptFaults?: number;
      faultSeed: number;
    }) => {
      const { SANDBOX_CREDENTIALS } = await import('../config.js');
      const { startSandbox } = await import('../sandbox/start-sandbox.js');
      const hasFaults = options.faults !== undefined || options.receiptFaults !== undefined;
      const sandbox = await startSandbox({
        host: options.host,
        ...(options.port === undefined ? {} : { port: options.port }),
        ...(options.smtpPort === undefined ? {} : { smtpPort: options.smtpPort }),
        ...(hasFaults
          ? {
              faults: {
                rate: options.faults ?? 0,
                receiptRate: options.receiptFaults ?? 0,
                seed: options.faultSeed,
                hangMs: 10_000,
              },
            }
          : {}),
      });
      const credentials = SANDBOX_CREDENTIALS;
      const { accountSid, authToken, from } = credentials;
      const http = sandbox.httpUrl;
      // What a service config needs to send here; the credentials are the stand-ins' own.
      const info = {
        http,
        smtp: sandbox.smtp,
        twilio: { accountSid, authToken, from },
        vonage: {
          baseUrl: http,
          apiKey: credentials.vonageApiKey,
          apiSecret: credentials.vonageApiSecret,
          from: credentials.vonageFrom,
        },
        whatsapp: {
          baseUrl: http,
          phoneNumberId: credentials.whatsappPhoneNumberId,
          accessToken: credentials.whatsappAccessToken,
        },
        chat: {
          slack: `${http}/chat/slack/ROOM`,
          teams: `${http}/chat/teams/ROOM`,
          json: `${http}/chat/json/ROOM`,
          jsonSecret: credentials.chatSecret,
        },
        messages: `${http}/sandbox/messages`,
      };
      process.stdout.write(`${JSON.stringify(info)}\n`);
      await waitForSignal();
      await sandbox.close();
    },
  );

interface SimulateFlags {
  trigger: string;
  directory?: string;
  format: 'text' | 'json';
  start?: DateTime;
  ackAfter?: Duration;
  ackBy?: string;
  resolveAfter?: Duration;
  approveAfter?: Duration;
  approveBy?: string[];
  resolve: boolean;
}

function collectVariables(value: string, previous: Record<string, string>): Record<string, string> {
  const separator = value.indexOf('=');
  if (separator <= 0)
    throw new InvalidArgumentError(
      `"${value}" is not name=value; write it like --var system=FS-03`,
    );
  return { ...previous, [value.slice(0, separator)]: value.slice(separator + 1) };
}

async function readAuditFromDatabase(file: string, incident: string): Promise<AuditExport> {
  const { readAudit } = await import('../audit.js');
  const { IncidentStore } = await import('../../src/index.js');
  const store = new IncidentStore(file, { readonly: true });
  try {
    const audit = readAudit(store, incident);
    if (!audit) throw new UsageError(`no incident has id "${incident}" in ${file}`);
    return audit;
  } finally {
    store.close();
  }
}

async function readAuditFromService(
  url: string | undefined,
  incident: string,
): Promise<AuditExport> {
  const { callApi, resolveTarget } = await import('./api-client.js');
  const target = resolveTarget(url, process.env);
  const route = `/api/incidents/${encodeURIComponent(incident)}/audit`;
  return (await callApi(target, 'GET', route)) as AuditExport;
}

function parsePort(value: string): number {
  const port = /^\d{1,5}$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isInteger(port) || port > 65535) {
    throw new InvalidArgumentError(`"${value}" is not a port; give a number from 0 to 65535`);
  }
  return port;
}

function parseShare(value: string): number {
  const share = /^(0(\.\d+)?|1(\.0+)?)$/.test(value.trim()) ? Number(value) : Number.NaN;
  if (Number.isNaN(share)) {
    throw new InvalidArgumentError(
      `"${value}" is not a share; give a number from 0 to 1, e.g. 0.3`,
    );
  }
  return share;
}

function parseCount(value: string): number {
  if (!/^\d{1,9}$/.test(value.trim())) {
    throw new InvalidArgumentError(`"${value}" is not a whole number; give digits, e.g. 7`);
  }
  return Number(value);
}

function parseDurationFlag(value: string): Duration {
  const text = value.trim();
  const match = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text);
  if (!match || text === '')
    throw new InvalidArgumentError(`"${value}" is not a duration; write it like 90s, 15m or 1h30m`);
  const [, d, h, m, s] = match;
  return Duration.fromObject({
    days: Number(d ?? 0),
    hours: Number(h ?? 0),
    minutes: Number(m ?? 0),
    seconds: Number(s ?? 0),
  });
}

function parseInstant(value: string): DateTime {
  const instant = DateTime.fromISO(value, { zone: 'utc' });
  if (!instant.isValid)
    throw new InvalidArgumentError(
      `"${value}" is not an ISO 8601 instant; write it like 2026-12-03T09:00:00Z`,
    );
  return instant;
}

function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

async function main(argv: string[]): Promise<void> {
  try {
    await program.parseAsync(argv);
  } catch (error) {
    process.exitCode = await toExitCode(error);
  }
}

async function toExitCode(error: unknown): Promise<number> {
  if (error instanceof CommanderError) {
    // Commander has printed its message already; help and version are not failures.
    return error.exitCode === 0 ? 0 : 2;
  }
  if (error instanceof UsageError) {
    process.stderr.write(`error: ${error.message}\n(run with --help for usage)\n`);
    return 2;
  }
  const { TocsinError, PlaybookValidationError } = await import('../../src/checks.js');
  if (error instanceof PlaybookValidationError) {
    const { formatProblems } = await import('./print-problems.js');
    const { readFile } = await import('node:fs/promises');
    const files = [...new Set(error.problems.map((problem) => problem.location.file))];
    const texts = new Map<string, string>();
    // A directory's lines hold phone numbers and addresses: its problems are shown by line
    // and column only, without an excerpt, since this may go to a service's log.
    for (const file of files) {
      if (!/\.csv$/i.test(file)) texts.set(file, await readFile(file, 'utf8').catch(() => ''));
    }
    process.stderr.write(
      `${formatProblems(error.problems, texts)}\nrun "tocsin validate ${files.join(' ')}" to check it again\n`,
    );
    return 1;
  }
  if (error instanceof TocsinError) {
    process.stderr.write(`error ${error.code}: ${error.message}\n`);
    return 1;
  }
  process.stderr.write(
    `tocsin failed with an unexpected error; this is a bug:\n${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  return 1;
}

await main(process.argv);
