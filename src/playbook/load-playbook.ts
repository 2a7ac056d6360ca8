import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';

import { PlaybookSyntaxError, PlaybookValidationError, TocsinError } from '../errors.js';
import type { Problem } from '../errors.js';
import { TemplateEngine } from '../template/index.js';
import { compileMessages, quoteList, stripLocation, suggest } from './check-messages.js';
import type { CompiledMessage } from './check-messages.js';
import { checkSchema } from './check-schema.js';
import { parseDuration } from './duration.js';
import { IANAZone } from 'luxon';
import type { Duration } from 'luxon';

import type { TimeWindow } from '../time/index.js';
import type {
  ApprovalGate,
  Weekday,
  TriggerDefinition,
  Playbook,
  PlaybookDefinition,
  Stage,
  StageDefinition,
} from './types.js';
import { parseYamlSource, problemAt } from './yaml-source.js';
import type { PathSegments, YamlSource } from './yaml-source.js';

/** A checked playbook with its templates parsed once. */
export interface LoadedPlaybook extends Playbook {
  /** Keyed by `messageKey(stageId, audienceId)`. */
  messages: Map<string, CompiledMessage>;
}

/** Options for loading a playbook. */
export interface LoadPlaybookOptions {
  templates?: TemplateEngine;
}

/**
 * Reads and checks a playbook file.
 *
 * @throws PlaybookSyntaxError when the YAML does not parse
 * @throws PlaybookValidationError listing every schema and semantic problem
 * @example
 * const playbook = await loadPlaybook('playbooks/instance-down.yaml');
 * console.log(playbook.name, playbook.version, playbook.stages.length);
 */
export async function loadPlaybook(
  file: string,
  options: LoadPlaybookOptions = {},
): Promise<LoadedPlaybook> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new TocsinError('E_PLAYBOOK_READ', `${file} cannot be read; check the path`, { cause });
  }
  return parsePlaybook(text, file, options);
}

/**
 * Parses and checks playbook text.
 *
 * @throws PlaybookSyntaxError when the YAML does not parse
 * @throws PlaybookValidationError listing every schema and semantic problem
 */
export function parsePlaybook(
  text: string,
  file: string,
  options: LoadPlaybookOptions = {},
): LoadedPlaybook {
  return parsePlaybookSource(parseYamlSource(text, file), options);
}

/**
 * Checks an already parsed playbook document, for callers that parsed it to find its kind.
 *
 * @throws PlaybookValidationError listing every schema and semantic problem
 */
export function parsePlaybookSource(
  source: YamlSource,
  options: LoadPlaybookOptions = {},
): LoadedPlaybook {
  const { text, file } = source;
  const schemaProblems = checkSchema('playbook', source);
  if (schemaProblems.length > 0) throw new PlaybookValidationError(file, schemaProblems);

  const definition = source.value as PlaybookDefinition;
  const templates = options.templates ?? new TemplateEngine();
  const checker = new SemanticChecker(source, definition, templates);
  const { stages, messages } = checker.check();
  if (checker.problems.length > 0) throw new PlaybookValidationError(file, checker.problems);

  return {
    name: definition.metadata.name,
    version: definition.metadata.version,
    digest: createHash('sha256').update(text).digest('hex'),
    file,
    source: text,
    definition,
    stages,
    messages,
  };
}

/** Problems of a playbook file as a list; syntax errors become a one-item list. */
export function validatePlaybookText(text: string, file: string): Problem[] {
  try {
    parsePlaybook(text, file);
    return [];
  } catch (error) {
    if (error instanceof PlaybookValidationError) return [...error.problems];
    if (error instanceof PlaybookSyntaxError && error.location) {
      return [
        { code: error.code, message: stripLocation(error.message), location: error.location },
      ];
    }
    throw error;
  }
}

// Repeats faster than a minute flood phones; offsets past a year are typos.
const MIN_REPEAT_MS = 60_000;
const MAX_OFFSET_MS = 366 * 24 * 60 * 60 * 1000;

const WEEKDAYS: readonly Weekday[] = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

function describeBadValue(
  variable: NonNullable<PlaybookDefinition['variables']>[string],
  value: string | number | boolean,
): string | undefined {
  switch (variable.type) {
    case 'enum':
      return variable.values?.includes(String(value))
        ? undefined
        : `is ${JSON.stringify(value)}, which is not one of its values ${quoteList(variable.values ?? [])}; use one of them`;
    case 'duration':
      return typeof value === 'string' && parseDuration(value)
        ? undefined
        : `is ${JSON.stringify(value)}, which is not a duration; write it like 15m`;
    case 'string':
    case 'number':
    case 'boolean':
      return typeof value === variable.type
        ? undefined
        : `is a ${typeof value}, but its type is ${variable.type}; change one of them`;
  }
}

class SemanticChecker {
  readonly problems: Problem[] = [];

  constructor(
    private readonly source: YamlSource,
    private readonly definition: PlaybookDefinition,
    private readonly templates: TemplateEngine,
  ) {}

  check(): { stages: Stage[]; messages: Map<string, CompiledMessage> } {
    this.checkVariables();
    this.checkAcknowledgement();
    this.checkHours();
    const stages = this.checkStages();
    const messages = compileMessages({
      source: this.source,
      definition: this.definition,
      templates: this.templates,
      problems: this.problems,
    });
    return { stages, messages };
  }

  private checkVariables(): void {
    const declared = this.definition.variables ?? {};
    for (const [name, variable] of Object.entries(declared)) {
      if (variable.type === 'enum' && !variable.values) {
        this.report(
          ['variables', name, 'type'],
          'E_PLAYBOOK_BAD_DEFAULT',
          `variable "${name}" is an enum without values:; list the allowed values`,
        );
      }
      for (const key of ['default', 'example'] as const) {
        const value = variable[key];
        if (value === undefined) continue;
        const problem = describeBadValue(variable, value);
        if (problem) {
          this.report(
            ['variables', name, key],
            'E_PLAYBOOK_BAD_DEFAULT',
            `the ${key} of variable "${name}" ${problem}`,
          );
        }
      }
    }

    this.definition.triggers.forEach((trigger, index) => {
      this.checkTriggerShape(trigger, index);
      if (trigger.source === 'manual') return;
      const mapped = trigger.variables ?? {};
      for (const name of Object.keys(mapped)) {
        if (name in declared) continue;
        this.report(
          ['triggers', index, 'variables', name],
          'E_PLAYBOOK_UNKNOWN_VARIABLE',
          `trigger fills variable "${name}", which is not declared; declare it under variables:${suggest(name, Object.keys(declared))}`,
          'key',
        );
      }
      for (const [name, variable] of Object.entries(declared)) {
        if (variable.default !== undefined || name in mapped) continue;
        this.report(
          ['triggers', index],
          'E_PLAYBOOK_UNSET_VARIABLE',
          `variable "${name}" has no default and this trigger does not fill it; add "${name}: <payload path>" under the trigger's variables: or give it a default`,
        );
      }
    });
  }

  private checkStages(): Stage[] {
    const audiences = Object.keys(this.definition.audiences);
    const seen = new Set<string>();
    const stages: Stage[] = [];
    const timedApproval = new Map<string, ApprovalGate>();
    const escalating = this.definition.stages.some(
      (stage) => stage.approval?.onTimeout === 'escalate',
    );
    const awaitingAck = this.definition.stages.some((stage) => stage.ackTimeout !== undefined);
    const indexOf = new Map<Stage, number>();

    this.definition.stages.forEach((stage, index) => {
      if (seen.has(stage.id)) {
        this.report(
          ['stages', index, 'id'],
          'E_PLAYBOOK_DUPLICATE_ID',
          `stage id "${stage.id}" is used twice; give each stage its own id`,
        );
      }
      seen.add(stage.id);

      stage.audiences.forEach((audience, position) => {
        if (audiences.includes(audience)) return;
        this.report(
          ['stages', index, 'audiences', position],
          'E_PLAYBOOK_UNKNOWN_AUDIENCE',
          `stage "${stage.id}" sends to audience "${audience}", which is not declared; declare it under audiences:${suggest(audience, audiences)}`,
        );
      });

      const approval = this.readApproval(stage, index);
      const ackTimeout = this.readStageDuration(stage, index, 'ackTimeout');
      this.readStageDuration(stage, index, 'receiptTimeout');
      if (stage.on !== undefined) {
        if (stage.unless === 'acknowledged' && stage.on === 'acknowledged') {
          this.report(
            ['stages', index, 'unless'],
            'E_PLAYBOOK_UNREACHABLE_STAGE',
            `stage "${stage.id}" fires on acknowledgement unless acknowledged, so it never fires; remove unless:`,
            'key',
          );
        }
        if (stage.on === 'approval-timed-out' && !escalating) {
          this.report(
            ['stages', index, 'on'],
            'E_PLAYBOOK_UNREACHABLE_STAGE',
            `stage "${stage.id}" fires when an approval times out, but no stage has an approval with onTimeout: escalate; add one or remove this stage`,
          );
        }
        if (stage.on === 'ack-timed-out' && !awaitingAck) {
          this.report(
            ['stages', index, 'on'],
            'E_PLAYBOOK_UNREACHABLE_STAGE',
            `stage "${stage.id}" fires when an acknowledgement times out, but no stage has ackTimeout:; add it to the stage whose recipients must answer, or remove this stage`,
          );
        }
        if (ackTimeout && ['acknowledged', 'resolved', 'cancelled'].includes(stage.on)) {
          this.report(
            ['stages', index, 'ackTimeout'],
            'E_PLAYBOOK_ACK_TIMEOUT',
            `stage "${stage.id}" fires on ${stage.on}, when there is nothing left to acknowledge, so its ackTimeout never runs out; remove ackTimeout:`,
            'key',
          );
        }
        const event: Stage = {
          id: stage.id,
          kind: 'event',
          on: stage.on,
          audiences: stage.audiences,
        };
        if (approval) event.approval = approval;
        if (ackTimeout) event.ackTimeout = ackTimeout;
        indexOf.set(event, index);
        stages.push(event);
        return;
      }

      const after = parseDuration(stage.after ?? '');
      if (!after || after.toMillis() > MAX_OFFSET_MS) {
        this.report(
          ['stages', index, 'after'],
          'E_PLAYBOOK_BAD_DURATION',
          `"${stage.after}" is not a duration of at most 366 days; write it like 90s, 15m, 2h, 1h30m or PT15M`,
        );
        return;
      }
      const unlessAcknowledged = stage.unless === 'acknowledged';
      if (approval) timedApproval.set(stage.id, approval);
      const timed: Stage = {
        id: stage.id,
        kind: 'timed',
        after,
        unlessAcknowledged,
        audiences: stage.audiences,
      };
      if (ackTimeout) timed.ackTimeout = ackTimeout;

      if (stage.every !== undefined) {
        const every = parseDuration(stage.every);
        if (!every || every.toMillis() < MIN_REPEAT_MS || every.toMillis() > MAX_OFFSET_MS) {
          this.report(
            ['stages', index, 'every'],
            'E_PLAYBOOK_BAD_DURATION',
            `"${stage.every}" is not a repeat interval between 1 minute and 366 days; write it like 30m or 1h`,
          );
          return;
        }
        if (stage.until === undefined) {
          this.report(
            ['stages', index, 'every'],
            'E_PLAYBOOK_ENDLESS_STAGE',
            `stage "${stage.id}" repeats every ${stage.every} with no end; add until: resolved or until: acknowledged`,
            'key',
          );
        }
        timed.every = every;
        if (stage.until !== undefined) timed.until = stage.until;
      }
      const gate = timedApproval.get(stage.id);
      if (gate && timed.kind === 'timed') timed.approval = gate;
      if (stage.during === 'business' && timed.kind === 'timed') {
        const window = this.businessHours();
        if (window) timed.businessHours = window;
        else {
          this.report(
            ['stages', index, 'during'],
            'E_PLAYBOOK_BAD_HOURS',
            `stage "${stage.id}" waits for business hours, but hours.business is not set; add it (zone, days, from, to)`,
            'key',
          );
        }
      }
      indexOf.set(timed, index);
      stages.push(timed);
    });

    this.checkAckTimeouts(stages, indexOf);
    return stages;
  }

  private readStageDuration(
    stage: StageDefinition,
    index: number,
    key: 'ackTimeout' | 'receiptTimeout',
  ): Duration | undefined {
    const text = stage[key];
    if (text === undefined) return undefined;
    const timeout = parseDuration(text);
    if (timeout && timeout.toMillis() >= 1_000 && timeout.toMillis() <= MAX_OFFSET_MS)
      return timeout;
    this.report(
      ['stages', index, key],
      'E_PLAYBOOK_BAD_DURATION',
      `"${text}" is not a duration between 1 second and 366 days; write it like 90s, 10m or PT10M`,
    );
    return undefined;
  }

  /**
   * The time a stage gives its people to acknowledge must end by the next escalation (a stage
   * with `unless: acknowledged`, first firing or repeat); otherwise the escalation overtakes the
   * people still within their time. A stage that may wait (for approval, for business hours)
   * carries its deadline along, so the check takes the longest wait.
   */
  private checkAckTimeouts(stages: readonly Stage[], indexOf: ReadonlyMap<Stage, number>): void {
    const escalations = stages.flatMap((stage) =>
      stage.kind === 'timed' && stage.unlessAcknowledged ? [stage] : [],
    );
    for (const stage of stages) {
      if (stage.kind !== 'timed' || !stage.ackTimeout) continue;
      const start = stage.after.toMillis();
      const timeout = stage.ackTimeout.toMillis();
      const next = escalations
        .filter((escalation) => escalation !== stage)
        .flatMap((escalation) => {
          const due = firstFiringFrom(escalation, start);
          return due === undefined ? [] : [{ escalation, due }];
        })
        .sort((a, b) => a.due - b.due)[0];
      if (!next) continue;

      const path = ['stages', indexOf.get(stage) ?? 0, 'ackTimeout'];
      const name = `escalation "${next.escalation.id}"`;
      const gateWait = stage.approval ? (stage.approval.timeout?.toMillis() ?? Infinity) : 0;
      if (stage.businessHours && !next.escalation.businessHours) {
        this.report(
          path,
          'E_PLAYBOOK_ACK_TIMEOUT',
          `stage "${stage.id}" may wait for business hours, so its time to acknowledge can end long after ${name} (+${formatMinutes(next.due)}), which does not wait; give both during: business, or drop ackTimeout:`,
        );
      } else if (gateWait > 0 && next.due < start + gateWait + timeout) {
        const wait = gateWait === Infinity ? 'with no timeout' : `up to ${formatMinutes(gateWait)}`;
        this.report(
          path,
          'E_PLAYBOOK_ACK_TIMEOUT',
          `stage "${stage.id}" waits ${wait} for its approval, so its time to acknowledge can end after ${name} at +${formatMinutes(next.due)}; move the escalation past the approval timeout plus ackTimeout, or drop ackTimeout:`,
        );
      } else if (next.due === start) {
        this.report(
          path,
          'E_PLAYBOOK_ACK_TIMEOUT',
          `${name} is due at +${formatMinutes(start)}, together with stage "${stage.id}", so nobody has time to acknowledge; move the escalation later or drop ackTimeout:`,
        );
      } else if (next.due < start + timeout) {
        this.report(
          path,
          'E_PLAYBOOK_ACK_TIMEOUT',
          `stage "${stage.id}" gives ${formatMinutes(timeout)} to acknowledge, until +${formatMinutes(start + timeout)}, but ${name} is due at +${formatMinutes(next.due)}; shorten ackTimeout: to at most ${formatMinutes(next.due - start)} or move the escalation later`,
        );
      }
    }
  }

  private businessHours(): TimeWindow | undefined {
    const business = this.definition.hours?.business;
    if (!business) return undefined;
    const window: TimeWindow = { zone: business.zone, from: business.from, to: business.to };
    if (business.days) window.days = business.days.map((day) => WEEKDAYS.indexOf(day) + 1);
    return window;
  }

  private checkHours(): void {
    const zone = this.definition.hours?.business?.zone;
    if (zone !== undefined && !IANAZone.isValidZone(zone)) {
      this.report(
        ['hours', 'business', 'zone'],
        'E_PLAYBOOK_BAD_HOURS',
        `"${zone}" is not an IANA time zone; write it like Europe/Berlin or America/New_York`,
      );
    }
    const windows = [this.definition.hours?.business, this.definition.hours?.quiet];
    ['business', 'quiet'].forEach((name, index) => {
      const window = windows[index];
      if (window && window.from === window.to) {
        this.report(
          ['hours', name, 'to'],
          'E_PLAYBOOK_BAD_HOURS',
          `${name} hours start and end at ${window.from}, which makes an empty window; change from: or to:`,
        );
      }
    });
  }

  private checkAcknowledgement(): void {
    const ack = this.definition.acknowledgement;
    if (!ack) return;
    const audiences = Object.keys(this.definition.audiences);
    if (ack.audience !== undefined && !audiences.includes(ack.audience)) {
      this.report(
        ['acknowledgement', 'audience'],
        'E_PLAYBOOK_UNKNOWN_AUDIENCE',
        `acknowledgements are counted from audience "${ack.audience}", which is not declared${suggest(ack.audience, audiences)}`,
      );
    }
    if ((ack.mode === 'quorum') !== (ack.quorum !== undefined)) {
      this.report(
        ['acknowledgement'],
        'E_PLAYBOOK_BAD_ACKNOWLEDGEMENT',
        ack.mode === 'quorum'
          ? 'mode: quorum needs quorum: the number of people who must acknowledge'
          : 'quorum: counts only with mode: quorum; set the mode or remove quorum:',
      );
    }
    if (ack.mode === 'all' && ack.audience === undefined) {
      this.report(
        ['acknowledgement', 'mode'],
        'E_PLAYBOOK_BAD_ACKNOWLEDGEMENT',
        'mode: all needs audience: the people who must all acknowledge',
      );
    }
  }

  /** Each source reads only some trigger keys; a key it ignores is a mistake worth naming. */
  private checkTriggerShape(trigger: TriggerDefinition, index: number): void {
    const isAlertGroup = trigger.source === 'alertmanager' || trigger.source === 'grafana';
    const misplaced: [
      keyof TriggerDefinition | 'labels' | 'fields',
      boolean,
      PathSegments,
      string,
    ][] = [
      [
        'labels',
        !isAlertGroup && trigger.match?.labels !== undefined,
        ['triggers', index, 'match', 'labels'],
        'only alertmanager and grafana triggers match labels; use match.fields',
      ],
      [
        'fields',
        isAlertGroup && trigger.match?.fields !== undefined,
        ['triggers', index, 'match', 'fields'],
        'alertmanager and grafana triggers match labels, not fields; use match.labels',
      ],
      [
        'dedupeKey',
        trigger.source !== 'json' && trigger.dedupeKey !== undefined,
        ['triggers', index, 'dedupeKey'],
        `the ${trigger.source} trigger has its own incident identity; remove dedupeKey:`,
      ],
      [
        'resolveWhen',
        trigger.source !== 'json' && trigger.resolveWhen !== undefined,
        ['triggers', index, 'resolveWhen'],
        `the ${trigger.source} trigger knows when it resolves; remove resolveWhen:`,
      ],
      [
        'variables',
        trigger.source === 'manual' && trigger.variables !== undefined,
        ['triggers', index, 'variables'],
        'a manual trigger takes its variables from the person who starts it; remove variables:',
      ],
      [
        'match',
        trigger.source === 'manual' && trigger.match !== undefined,
        ['triggers', index, 'match'],
        'a manual trigger matches nothing; remove match:',
      ],
    ];
    for (const [, isWrong, path, message] of misplaced) {
      if (isWrong) this.report(path, 'E_PLAYBOOK_BAD_TRIGGER', message, 'key');
    }
    if (trigger.source === 'json' && trigger.dedupeKey === undefined) {
      this.report(
        ['triggers', index],
        'E_PLAYBOOK_BAD_TRIGGER',
        'a json trigger needs dedupeKey: the payload path that identifies the incident, so a repeated delivery starts nothing new',
      );
    }
  }

  private readApproval(stage: StageDefinition, index: number): ApprovalGate | undefined {
    const approval = stage.approval;
    if (!approval) return undefined;
    if (stage.on === 'resolved' || stage.on === 'cancelled') {
      this.report(
        ['stages', index, 'approval'],
        'E_PLAYBOOK_BAD_APPROVAL',
        `stage "${stage.id}" fires when the incident closes, when nobody is left to wait for an approval; remove approval: or move the stage`,
        'key',
      );
      return undefined;
    }
    const gate: ApprovalGate = {
      roles: approval.roles,
      quorum: approval.quorum ?? 1,
      onTimeout: approval.onTimeout ?? 'hold',
    };
    if (approval.timeout !== undefined) {
      const timeout = parseDuration(approval.timeout);
      if (!timeout || timeout.toMillis() <= 0) {
        this.report(
          ['stages', index, 'approval', 'timeout'],
          'E_PLAYBOOK_BAD_DURATION',
          `"${approval.timeout}" is not a duration longer than zero; write it like 30m`,
        );
        return undefined;
      }
      gate.timeout = timeout;
    } else if (approval.onTimeout !== undefined) {
      this.report(
        ['stages', index, 'approval', 'onTimeout'],
        'E_PLAYBOOK_BAD_APPROVAL',
        `stage "${stage.id}" says what to do on timeout but has no timeout; add timeout: (e.g. 30m)`,
        'key',
      );
    }
    return gate;
  }

  private report(
    path: PathSegments,
    code: Problem['code'],
    message: string,
    mode: 'key' | 'value' = 'value',
  ): void {
    this.problems.push(problemAt(this.source, path, code, message, mode));
  }
}

/** When a timed stage fires first at or after `from` (ms after the start), if ever. */
function firstFiringFrom(
  stage: Extract<Stage, { kind: 'timed' }>,
  from: number,
): number | undefined {
  const after = stage.after.toMillis();
  if (after >= from) return after;
  const every = stage.every?.toMillis();
  if (!every) return undefined;
  return after + Math.ceil((from - after) / every) * every;
}

/** A span in the units a playbook author writes: 90s, 15m, 2h, 1h30m. */
function formatMinutes(ms: number): string {
  const seconds = Math.round(ms / 1000);
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const rest = seconds % 60;
  const parts = [hours ? `${hours}h` : '', minutes ? `${minutes}m` : '', rest ? `${rest}s` : ''];
  return parts.join('') || '0m';
}
