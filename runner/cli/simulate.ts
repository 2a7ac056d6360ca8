import { readFile } from 'node:fs/promises';

import { DateTime, Duration } from 'luxon';

import {
  createEngine,
  IncidentStore,
  loadDirectory,
  loadPlaybook,
  ManualClock,
  WEBHOOK_SOURCES,
  TocsinError,
} from '../../src/index.js';
import type { Directory, Engine, IncidentContext, LoadedPlaybook } from '../../src/index.js';

/** Options of one simulated run. */
export interface SimulateOptions {
  playbookFile: string;
  triggerFile: string;
  directoryFile: string;
  start: DateTime;
  ackAfter?: Duration;
  /** Who acknowledges: one person id, or several separated by commas. */
  ackBy?: string;
  resolveAfter?: Duration;
  /** Approve each approval request this long after it is made, by these people in turn. */
  approveAfter?: Duration;
  approveBy?: string[];
  /** When no resolution time is given: resolve once no timer is left (true) or leave it open. */
  resolveAtEnd: boolean;
}

/** One thing that happened on the simulated timeline. */
export interface TimelineEntry {
  at: string;
  offset: string;
  type: string;
  stageId?: string;
  by?: string;
  messages?: {
    heldUntil?: string;
    personId: string;
    name: string;
    channel: string;
    subject: string | null;
    body: string;
    status: string;
  }[];
  /** For a stage to more people than a simulation shows: how many messages it would send. */
  wouldSend?: number;
}

/** The simulated timeline of one incident. */
export interface SimulationResult {
  playbook: { name: string; version: number; file: string };
  incidentId: string;
  startedAt: string;
  endedAt: string;
  status: string;
  timeline: TimelineEntry[];
  totals: { messages: number; byChannel: Record<string, number> };
}

// A stage to more people shows this many messages and counts the rest, so a rehearsal with a
// whole staff or customer base stays quick to run and to read.
const SHOWN_PER_STAGE = 50;

// A timeline that has not settled after this long is cut off; it would repeat forever.
const HORIZON = { days: 7 };

/**
 * Runs a playbook on a manual clock with an in-memory database: the same engine, machine and
 * templates as the service, with nothing sent. Returns who would be told what, when, and how.
 */
export async function simulate(options: SimulateOptions): Promise<SimulationResult> {
  const playbook = await loadPlaybook(options.playbookFile);
  const directory = await loadDirectory(options.directoryFile);
  const body = await readJson(options.triggerFile);

  const clock = new ManualClock(options.start);
  const store = new IncidentStore(':memory:');
  const engine = createEngine({
    store,
    clock,
    directory,
    sampleLargeStages: SHOWN_PER_STAGE,
    dryRun: true,
  });
  engine.loadPlaybooks([playbook]);
  engine.start();

  const incidentId = startFromTrigger(engine, playbook, body, options.triggerFile);

  if (options.ackAfter) {
    const people = (options.ackBy ?? 'simulation')
      .split(',')
      .map((id) => id.trim())
      .filter((id) => id !== '');
    clock.setTimeout(
      () =>
        people.forEach((by) => tryEvent(() => engine.acknowledge(incidentId, by, 'simulation'))),
      options.ackAfter.toMillis(),
    );
  }
  const resolveAfter =
    options.resolveAfter ?? (options.resolveAtEnd ? defaultResolveAfter(playbook) : undefined);
  if (resolveAfter) {
    clock.setTimeout(
      () => tryEvent(() => engine.resolve(incidentId, 'simulation')),
      resolveAfter.toMillis(),
    );
  }

  const horizon = options.start.plus(HORIZON);
  const scheduled = new Set<string>();
  const scheduleApprovals = (): void => {
    if (!options.approveAfter) return;
    const pending =
      (store.getIncident(incidentId)?.snapshot as { context?: IncidentContext }).context?.pending ??
      [];
    for (const request of pending) {
      const key = `${request.stageId}:${request.occurrence}`;
      if (scheduled.has(key)) continue;
      scheduled.add(key);
      const at = DateTime.fromISO(request.requestedAt).plus(options.approveAfter);
      const approvers = options.approveBy ?? [];
      clock.setTimeout(
        () =>
          approvers.forEach((by) =>
            tryEvent(() => engine.approve(incidentId, request.stageId, by)),
          ),
        at.toMillis() - clock.now().toMillis(),
      );
    }
  };
  scheduleApprovals();
  for (let next = clock.nextDue(); next && next <= horizon; next = clock.nextDue()) {
    clock.advanceTo(next);
    scheduleApprovals();
  }
  if (
    !options.resolveAfter &&
    options.resolveAtEnd &&
    store.getIncident(incidentId)?.status === 'open'
  ) {
    engine.resolve(incidentId, 'simulation');
  }

  const result = toResult(store, directory, incidentId, playbook, options.start, clock.now());
  engine.stop();
  store.close();
  return result;
}

/** Prints a simulation as a readable timeline. */
export function formatSimulationText(result: SimulationResult): string {
  const lines = [
    `Simulation of ${result.playbook.name} v${result.playbook.version} (${result.playbook.file})`,
    `Incident ${result.incidentId}, started ${result.startedAt} on a virtual clock`,
    '',
  ];
  for (const entry of result.timeline) {
    const what = entry.stageId ? `${entry.type} ${entry.stageId}` : entry.type;
    const by = entry.by ? ` by ${entry.by}` : '';
    const count = entry.messages
      ? entry.wouldSend !== undefined
        ? ` (${entry.wouldSend} messages, the first ${entry.messages.length} shown)`
        : ` (${entry.messages.length} message${entry.messages.length === 1 ? '' : 's'})`
      : '';
    lines.push(`${entry.offset.padStart(8)}  ${what}${by}${count}`);
    for (const message of entry.messages ?? []) {
      lines.push(
        `            ${message.channel.padEnd(5)} ${message.name} (${message.personId})${message.status === 'failed' ? ' NOT RENDERED' : ''}${message.heldUntil ? `, held for quiet hours until ${message.heldUntil}` : ''}`,
      );
      if (message.subject !== null) lines.push(`                  subject: ${message.subject}`);
      for (const line of toDisplayBody(message).split('\n'))
        lines.push(`                  | ${line}`);
    }
  }
  const channels = Object.entries(result.totals.byChannel)
    .map(([channel, count]) => `${count} ${channel}`)
    .join(', ');
  lines.push(
    '',
    `${result.totals.messages} messages (${channels || 'none'}); incident ${result.status}. Nothing was sent.`,
  );
  return lines.join('\n');
}

/** A WhatsApp body holds the free text and the template; show what a person would see. */
function toDisplayBody(message: { channel: string; body: string }): string {
  if (message.channel !== 'whatsapp') return message.body.trimEnd();
  const parsed = JSON.parse(message.body) as {
    text: string | null;
    template: { name: string; language: string; parameters: string[] } | null;
  };
  const template = parsed.template
    ? `template ${parsed.template.name} (${parsed.template.language}): ${parsed.template.parameters.join(' | ')}`
    : undefined;
  return [parsed.text, template].filter((part): part is string => Boolean(part)).join('\n');
}

function toResult(
  store: IncidentStore,
  directory: Directory,
  incidentId: string,
  playbook: { name: string; version: number; file: string },
  start: DateTime,
  end: DateTime,
): SimulationResult {
  const messages = store.listMessages(incidentId);
  // Names of the people messaged only: a large directory is read once, not held as a map.
  const messaged = new Set(messages.map((message) => message.personId));
  const names = new Map<string, string>();
  for (const person of directory.people) {
    if (messaged.has(person.id)) names.set(person.id, person.name);
  }
  const timeline: TimelineEntry[] = [];
  const unshown: Record<string, number> = {};

  for (const entry of store.listAudit(incidentId)) {
    const offset = toOffset(start, DateTime.fromISO(entry.at));
    const base: TimelineEntry = { at: entry.at, offset, type: entry.type };
    // Each stage entry lists its messages; the per-message entries of the log would repeat them.
    if (entry.type === 'timer.fired' || entry.type.startsWith('message.')) continue;
    if (
      ['stage.fired', 'stage.skipped', 'approval.requested', 'approval.received'].includes(
        entry.type,
      )
    ) {
      const stageId = String(entry.data.stageId);
      // Approval requests are stored under their own stage id, apart from the stage's messages.
      const outboxStage = entry.type === 'approval.requested' ? `approval:${stageId}` : stageId;
      const sent =
        entry.type === 'stage.fired' || entry.type === 'approval.requested'
          ? messages
              .filter(
                (message) =>
                  message.stageId === outboxStage &&
                  message.occurrence === Number(entry.data.occurrence ?? 1),
              )
              .map((message) => ({
                personId: message.personId,
                name: names.get(message.personId) ?? message.personId,
                channel: message.channel,
                subject: message.subject,
                body: message.body,
                status: message.status,
                ...(message.notBefore ? { heldUntil: message.notBefore } : {}),
              }))
          : undefined;
      const by = entry.actor === 'engine' ? {} : { by: entry.actor };
      const wouldSend = entry.data.sampled === true ? Number(entry.data.wouldSend) : undefined;
      if (wouldSend !== undefined && sent) {
        // The messages not shown still count, by the channel each would take.
        const shown: Record<string, number> = {};
        for (const message of sent) shown[message.channel] = (shown[message.channel] ?? 0) + 1;
        for (const [channel, count] of Object.entries(
          entry.data.byChannel as Record<string, number>,
        )) {
          unshown[channel] = (unshown[channel] ?? 0) + count - (shown[channel] ?? 0);
        }
      }
      timeline.push({
        ...base,
        stageId,
        ...by,
        ...(sent ? { messages: sent } : {}),
        ...(wouldSend === undefined ? {} : { wouldSend }),
      });
      continue;
    }
    timeline.push(entry.actor === 'engine' ? base : { ...base, by: entry.actor });
  }

  const byChannel: Record<string, number> = { ...unshown };
  for (const message of messages)
    byChannel[message.channel] = (byChannel[message.channel] ?? 0) + 1;
  const total = Object.values(byChannel).reduce((sum, count) => sum + count, 0);
  return {
    playbook: { name: playbook.name, version: playbook.version, file: playbook.file },
    incidentId,
    startedAt: start.toUTC().toISO() ?? '',
    endedAt: end.toUTC().toISO() ?? '',
    status: store.getIncident(incidentId)?.status ?? 'unknown',
    timeline,
    totals: { messages: total, byChannel },
  };
}

function toOffset(start: DateTime, at: DateTime): string {
  const total = Math.round(at.diff(start).as('seconds'));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  const parts = [
    hours > 0 ? `${hours}h` : '',
    minutes > 0 ? `${minutes}m` : '',
    seconds > 0 ? `${seconds}s` : '',
  ];
  return `+${parts.join('') || '0m'}`;
}

/**
 * Starts the incident the way the service would: through the playbook's first webhook source,
 * or, for a playbook started only by hand, from `{"by": "...", "variables": {...}}`.
 */
function startFromTrigger(
  engine: Engine,
  playbook: LoadedPlaybook,
  body: unknown,
  file: string,
): string {
  const source = playbook.definition.triggers.find(
    (trigger) => trigger.source !== 'manual',
  )?.source;
  if (source === undefined || source === 'manual') {
    const request = body as { by?: unknown; variables?: unknown } | null;
    const by = typeof request?.by === 'string' ? request.by : 'simulation';
    const variables = (request?.variables ?? {}) as Record<string, string | number | boolean>;
    return engine.declare({ playbook: playbook.name, variables, by }).id;
  }

  const payload = WEBHOOK_SOURCES[source].parse(body);
  const outcome = engine
    .handleWebhook(source, payload, 'simulation')
    .find((entry) => entry.incidentId);
  if (!outcome?.incidentId) {
    throw new TocsinError(
      'E_TRIGGER_PAYLOAD',
      `${file} does not start playbook "${playbook.name}": it is a ${source} payload that matches none of the playbook's ${source} triggers`,
    );
  }
  return outcome.incidentId;
}

/**
 * When to resolve if the user did not say: after two rounds of the slowest repeating stage, so
 * updates show without repeating for days; undefined when nothing repeats, and the incident is
 * resolved once no timer is left.
 */
function defaultResolveAfter(playbook: LoadedPlaybook): Duration | undefined {
  let latest = 0;
  let slowest = 0;
  for (const stage of playbook.stages) {
    if (stage.kind !== 'timed') continue;
    latest = Math.max(latest, stage.after.toMillis());
    slowest = Math.max(slowest, stage.every?.toMillis() ?? 0);
  }
  return slowest === 0 ? undefined : Duration.fromMillis(latest + 2 * slowest);
}

function tryEvent(event: () => void): void {
  try {
    event();
  } catch (error) {
    // An acknowledgement after resolution, say: the timeline shows what did happen.
    if (!(error instanceof TocsinError)) throw error;
  }
}

async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new TocsinError(
      'E_PLAYBOOK_READ',
      `${file} cannot be read; check the path given to --trigger`,
      { cause },
    );
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw new TocsinError(
      'E_TRIGGER_PAYLOAD',
      `${file} is not valid JSON; give a webhook body as sent by Alertmanager`,
      { cause },
    );
  }
}
