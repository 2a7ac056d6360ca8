import { randomInt } from 'node:crypto';

import { DateTime } from 'luxon';
import { createActor } from 'xstate';

import { answerFor, interpretReply } from './replies.js';
import type { ReplyIntent, ReplyOutcome } from './replies.js';
import type { Actor } from 'xstate';

import { toIsoUtc } from '../clock.js';
import type { Clock } from '../clock.js';
import { findPerson, findPersonByAddress, selectPeople } from '../directory/index.js';
import type { Directory } from '../directory/index.js';
import { EngineError } from '../errors.js';
import { createId } from '../ids.js';
import { noopLogger } from '../logger.js';
import type { Logger } from '../logger.js';
import { parsePlaybook } from '../playbook/index.js';
import type { LoadedPlaybook } from '../playbook/index.js';
import type {
  ExpansionRecord,
  IncidentRecord,
  IncidentStatus,
  IncidentStore,
  NewOutboxMessage,
} from '../store/index.js';
import { TemplateEngine } from '../template/index.js';
import { convertVariables, extractVariables, WEBHOOK_SOURCES } from '../triggers/index.js';
import type { AlertmanagerPayload, VariableValues, WebhookSource } from '../triggers/index.js';
import { buildMachine } from './build-machine.js';
import {
  approvalStageId,
  countRecipientPairs,
  decideApprovalRequests,
  decideMessages,
  tallyRecipients,
} from './decide-messages.js';
import type { DecideMessagesInput, SkippedRecipient } from './decide-messages.js';
import type { IncidentEvent, IncidentMachine, StageDecision } from './build-machine.js';
import type { FallbackReason } from './dispatcher.js';

/** What the engine needs from the world. */
export interface EngineDeps {
  store: IncidentStore;
  clock: Clock;
  directory: Directory;
  log?: Logger;
  templates?: TemplateEngine;
  /**
   * For dry runs (simulate): a stage to more than this many people decides only the first
   * this many messages and counts the rest by channel, without rendering them.
   */
  sampleLargeStages?: number;
  /**
   * A dry run (simulate): nothing is ever sent, so decided messages count as gone out and
   * closing an incident withdraws none of them.
   */
  dryRun?: boolean;
}

/** A request to start an incident of a playbook by name. */
export interface StartIncidentRequest {
  playbook: string;
  variables: VariableValues;
  dedupeKey?: string;
  createdBy: string;
}

/** What a trigger did for one playbook. */
export interface TriggerOutcome {
  playbook: string;
  action: 'started' | 'deduplicated' | 'resolved' | 'not-open' | 'rejected';
  incidentId?: string;
  errorCode?: string;
  error?: string;
}

interface PlaybookVersion {
  id: number;
  playbook: LoadedPlaybook;
  machine: IncidentMachine;
}

interface RunningIncident {
  id: string;
  version: PlaybookVersion;
  actor: Actor<IncidentMachine>;
  variables: VariableValues;
  log: Logger;
}

/** What one transition decided: stages fired, approvals requested, and the rows for both. */
interface Effects {
  fired: StageDecision[];
  requested: StageDecision[];
  messages: NewOutboxMessage[];
  /** People the fired stages could not reach, for the audit log. */
  skipped: (SkippedRecipient & { stageId: string; at: string })[];
  /** Fired stages too large for one transaction: the rest is decided in parts. */
  expansions: ExpansionRecord[];
  /** In a dry run, what each sampled stage would send in all, by `stageId:occurrence`. */
  tallies: Map<string, { messages: number; byChannel: Record<string, number> }>;
}

/**
 * The most (audience, person) pairs one transaction decides. A stage to more people than
 * EXPANSION_FIRST_PART decides that many with its firing, and the rest in further parts of this
 * size, each in its own transaction, so sending starts at once and memory does not grow with
 * the audience.
 */
export const EXPANSION_PART = 100;

/** The part decided with the firing itself: small, so the first messages leave at once. */
export const EXPANSION_FIRST_PART = 100;

// How long a timer whose transition failed waits before it is tried again.
const TIMER_RETRY_MS = 5_000;

// Node's timers overflow past about 24.8 days; a longer wait is re-armed in steps.
const MAX_TIMER_DELAY_MS = 60 * 60 * 1000;

/**
 * Runs incidents: one XState actor per open incident, persisted after every transition together
 * with its due timers and the outbox rows the transition decided, in one SQLite transaction.
 *
 * @example
 * const engine = createEngine({ store, clock: systemClock, directory });
 * engine.loadPlaybooks([await loadPlaybook('playbooks/instance-down.yaml')]);
 * engine.restore();
 * engine.start();
 * engine.handleAlertmanager(payload, 'alertmanager');
 */
export function createEngine(deps: EngineDeps): Engine {
  return new Engine(deps);
}

export class Engine {
  private readonly store: IncidentStore;
  private readonly clock: Clock;
  private readonly directory: Directory;
  private readonly sampleLargeStages: number | undefined;
  private readonly isDryRun: boolean;
  private readonly log: Logger;
  private readonly templates: TemplateEngine;
  private readonly current = new Map<string, PlaybookVersion>();
  private readonly versions = new Map<number, PlaybookVersion>();
  private readonly running = new Map<string, RunningIncident>();
  private readonly decidedListeners = new Set<() => void>();
  private timerHandle: unknown;
  private retryFloorMs = 0;
  private isStarted = false;
  private isExpanding = false;

  constructor(deps: EngineDeps) {
    this.store = deps.store;
    this.clock = deps.clock;
    this.directory = deps.directory;
    this.sampleLargeStages = deps.sampleLargeStages;
    this.isDryRun = deps.dryRun ?? false;
    this.log = deps.log ?? noopLogger;
    this.templates = deps.templates ?? new TemplateEngine();
  }

  /** Makes these playbooks the current versions; running incidents keep the version they started with. */
  loadPlaybooks(playbooks: readonly LoadedPlaybook[]): void {
    const loadedAt = toIsoUtc(this.clock.now());
    for (const playbook of playbooks) {
      const id = this.store.savePlaybookVersion({
        name: playbook.name,
        version: playbook.version,
        digest: playbook.digest,
        file: playbook.file,
        source: playbook.source,
        loadedAt,
      });
      const version = this.versions.get(id) ?? {
        id,
        playbook,
        machine: buildMachine(playbook.stages),
      };
      this.versions.set(id, version);
      this.current.set(playbook.name, version);
      this.log.info(
        { playbookId: playbook.name, version: playbook.version, versionId: id },
        'playbook loaded',
      );
    }
  }

  /** Names of the current playbooks. */
  playbookNames(): string[] {
    return [...this.current.keys()];
  }

  /**
   * Resumes every open incident from its stored snapshot. Call once at start-up, before `start`.
   *
   * @throws EngineError E_ENGINE_SNAPSHOT when a snapshot or its playbook version cannot be read
   */
  restore(): number {
    for (const incident of this.store.listIncidents({ status: 'open' })) {
      if (this.running.has(incident.id)) continue;
      this.running.set(incident.id, this.fromStored(incident));
    }
    this.log.info({ incidents: this.running.size }, 'incidents restored');
    return this.running.size;
  }

  /** Starts waking incidents when their timers are due; overdue timers fire at once, in order. */
  start(): void {
    this.isStarted = true;
    this.fireDueTimers();
    // Stages a previous process left half decided go on where they stopped.
    if (this.store.nextExpansion()) this.scheduleExpansion();
  }

  stop(): void {
    this.isStarted = false;
    if (this.timerHandle !== undefined) this.clock.clearTimeout(this.timerHandle);
    this.timerHandle = undefined;
    for (const incident of this.running.values()) incident.actor.stop();
    this.running.clear();
  }

  /** Calls `listener` after every transaction that added messages to the outbox. */
  onMessagesDecided(listener: () => void): () => void {
    this.decidedListeners.add(listener);
    return () => this.decidedListeners.delete(listener);
  }

  /** Starts or resolves incidents for an Alertmanager notification; see `handleWebhook`. */
  handleAlertmanager(payload: AlertmanagerPayload, createdBy: string): TriggerOutcome[] {
    return this.handleWebhook('alertmanager', payload, createdBy);
  }

  /**
   * Starts or resolves incidents for a webhook body that its source has parsed. A repeated
   * notification for an incident that is open changes nothing; a resolution closes it.
   *
   * @throws EngineError E_ENGINE_VARIABLE when every matching playbook needs a value the payload
   *   lacks; nothing is written then. When only some fail, the others start and the failures are
   *   returned as `rejected` outcomes.
   */
  handleWebhook(
    sourceName: WebhookSource['name'],
    payload: unknown,
    createdBy: string,
  ): TriggerOutcome[] {
    const source = WEBHOOK_SOURCES[sourceName];
    const matches = [...this.current.values()].flatMap((version) => {
      const trigger = version.playbook.definition.triggers.find(
        (candidate) => candidate.source === sourceName && source.matches(candidate, payload),
      );
      return trigger ? [{ version, trigger }] : [];
    });

    // Each playbook stands alone: one that cannot read its variables must not keep the others
    // from paging. Only when every match fails is the notification refused, with nothing written.
    const outcomes: TriggerOutcome[] = [];
    const failures: EngineError[] = [];
    for (const { version, trigger } of matches) {
      const playbook = version.playbook.name;
      const dedupeKey = source.dedupeKey(trigger, playbook, payload);
      const open = dedupeKey === undefined ? undefined : this.store.findOpenIncident(dedupeKey);

      if (source.isResolution(trigger, payload)) {
        if (!open) {
          outcomes.push({ playbook, action: 'not-open' });
          continue;
        }
        this.resolve(open.id, createdBy);
        outcomes.push({ playbook, action: 'resolved', incidentId: open.id });
        continue;
      }
      if (open) {
        outcomes.push({ playbook, action: 'deduplicated', incidentId: open.id });
        continue;
      }

      let variables: VariableValues;
      try {
        if (dedupeKey === undefined) {
          throw new EngineError(
            'E_ENGINE_VARIABLE',
            `the payload has no value at "${trigger.dedupeKey ?? '(no dedupeKey)'}", which identifies the incident; send it`,
          );
        }
        const declared = version.playbook.definition.variables ?? {};
        variables = extractVariables(declared, trigger.variables ?? {}, payload);
      } catch (error) {
        if (!(error instanceof EngineError)) throw error;
        this.log.error({ playbookId: playbook, err: error }, 'trigger rejected');
        failures.push(error);
        outcomes.push({
          playbook,
          action: 'rejected',
          errorCode: error.code,
          error: error.message,
        });
        continue;
      }
      const incident = this.startIncident({ playbook, dedupeKey, variables, createdBy });
      outcomes.push({ playbook, action: 'started', incidentId: incident.id });
    }

    const [firstFailure] = failures;
    if (firstFailure && failures.length === outcomes.length) throw firstFailure;
    return outcomes;
  }

  /**
   * Starts an incident by hand: the playbook must have a manual trigger, and the person must
   * hold a role under `responsibilities.declare` when the playbook names any.
   *
   * @throws EngineError E_ENGINE_UNKNOWN_PLAYBOOK, E_ENGINE_NOT_DECLARER or E_ENGINE_VARIABLE
   */
  declare(request: {
    playbook: string;
    variables: Record<string, string | number | boolean>;
    by: string;
  }): IncidentRecord {
    const version = this.current.get(request.playbook);
    const definition = version?.playbook.definition;
    if (!definition?.triggers.some((trigger) => trigger.source === 'manual')) {
      const manual = [...this.current.values()]
        .filter((candidate) =>
          candidate.playbook.definition.triggers.some((trigger) => trigger.source === 'manual'),
        )
        .map((candidate) => `"${candidate.playbook.name}"`);
      throw new EngineError(
        'E_ENGINE_UNKNOWN_PLAYBOOK',
        `no playbook named "${request.playbook}" can be started by hand; use one of ${manual.join(', ') || 'none (add a trigger with source: manual)'}`,
      );
    }
    const allowed = definition.responsibilities?.declare;
    const person = findPerson(this.directory, request.by);
    if (allowed && !person?.roles.some((role) => allowed.includes(role))) {
      throw new EngineError(
        'E_ENGINE_NOT_DECLARER',
        `"${request.by}" may not start "${request.playbook}": only people with the role ${allowed.map((role) => `"${role}"`).join(' or ')} may`,
      );
    }
    const variables = convertVariables(definition.variables ?? {}, request.variables);
    return this.startIncident({ playbook: request.playbook, variables, createdBy: request.by });
  }

  /**
   * Starts an incident: stores it, its first snapshot, its timers and the messages of stages due
   * at once, in one transaction.
   *
   * @throws EngineError E_ENGINE_UNKNOWN_PLAYBOOK when no playbook has that name
   */
  startIncident(request: StartIncidentRequest): IncidentRecord {
    const version = this.current.get(request.playbook);
    if (!version) {
      throw new EngineError(
        'E_ENGINE_UNKNOWN_PLAYBOOK',
        `no playbook is named "${request.playbook}"; load it or use one of ${this.playbookNames()
          .map((name) => `"${name}"`)
          .join(', ')}`,
      );
    }

    const now = this.clock.now();
    const startedAt = toIsoUtc(now);
    const id = createId('inc', now);
    const replyCode = this.newReplyCode();
    const actor = createActor(version.machine, {
      input: {
        incidentId: id,
        replyCode,
        startedAt,
        createdBy: request.createdBy,
        ...this.ackRule(version.playbook),
      },
    });
    actor.start();
    const running = this.toRunning(id, version, actor, request.variables);

    const record: IncidentRecord = {
      id,
      playbookVersionId: version.id,
      status: 'open',
      dedupeKey: request.dedupeKey ?? null,
      variables: request.variables,
      snapshot: actor.getPersistedSnapshot(),
      createdBy: request.createdBy,
      replyCode,
      startedAt,
      updatedAt: startedAt,
      closedAt: null,
    };
    const context = actor.getSnapshot().context;
    const effects = this.effectsOf(running, context.fired, context.requested);

    this.store.transaction(() => {
      this.store.insertIncident(record);
      this.store.appendAudit({
        incidentId: id,
        at: startedAt,
        actor: request.createdBy,
        type: 'incident.started',
        data: {
          playbook: version.playbook.name,
          version: version.playbook.version,
          variables: Object.keys(request.variables),
        },
      });
      this.persist(running, effects, startedAt);
    });
    this.running.set(id, running);

    running.log.info(
      { createdBy: request.createdBy, messages: effects.messages.length },
      'incident started',
    );
    this.afterCommit(effects.messages.length);
    return record;
  }

  /**
   * Records an acknowledgement; escalations that are skipped on acknowledgement are dropped in
   * the same transaction.
   *
   * @throws EngineError E_ENGINE_UNKNOWN_INCIDENT or E_ENGINE_INCIDENT_CLOSED
   */
  acknowledge(incidentId: string, by: string, via: string): void {
    const at = toIsoUtc(this.clock.now());
    this.apply(incidentId, { type: 'ack.received', at, by }, () => {
      this.store.insertAcknowledgement({ incidentId, by, via, at });
    });
    this.log.info({ incidentId, acknowledgedBy: by, via }, 'incident acknowledged');
  }

  /** Whether the directory has a person with this id. */
  hasPerson(id: string): boolean {
    return findPerson(this.directory, id) !== undefined;
  }

  /**
   * Tries the next channel for a message that failed for good (rejected by the provider, or
   * reported undelivered) or whose delivery receipt did not come within its stage's
   * `receiptTimeout`: the same stage, for the same person, on the next channel of the
   * audience's order they have an address for. A provider's "unsubscribed" also lands in the
   * opt-out ledger. Returns how many messages were decided (0 or 1).
   */
  fallBack(messageId: number, reason: FallbackReason = 'failed'): number {
    const failed = this.store.getMessage(messageId);
    const expected = reason === 'failed' ? 'failed' : 'accepted';
    if (failed?.status !== expected) return 0;
    const at = toIsoUtc(this.clock.now());
    if (failed.errorCode !== null && UNSUBSCRIBED_CODES.has(failed.errorCode)) {
      this.store.setOptOut({
        personId: failed.personId,
        channel: failed.channel,
        optedOut: true,
        at,
        via: `provider ${failed.errorCode}`,
      });
    }
    const running = this.running.get(failed.incidentId);
    if (!running || failed.stageId.startsWith('approval:')) return 0;

    const messages = this.decideMessages(
      running,
      { stageId: failed.stageId, at, occurrence: failed.occurrence },
      { personId: failed.personId, audienceId: failed.audienceId, channel: failed.channel },
    );
    this.store.transaction(() => {
      this.store.insertMessages(messages);
      this.store.appendAudit({
        incidentId: running.id,
        at,
        actor: 'engine',
        type: messages.length > 0 ? 'message.fallback' : 'message.no-fallback',
        data: {
          messageId: failed.id,
          personId: failed.personId,
          from: failed.channel,
          to: messages[0]?.channel ?? null,
          reason,
          errorCode: failed.errorCode,
        },
      });
    });
    running.log.info(
      { messageId: failed.id, from: failed.channel, to: messages[0]?.channel ?? null },
      messages.length > 0 ? 'falling back to the next channel' : 'no channel left to fall back to',
    );
    this.afterCommit(messages.length);
    return messages.length;
  }

  /**
   * Acts on a reply from a recipient: "ACK 4821" (or a bare "OK") acknowledges the incident the
   * code names (or the open incident that last messaged them on that channel); STOP and START
   * keep the opt-out ledger that later stages honour. A sender who is not in the directory
   * changes nothing.
   */
  handleReply(reply: { channel: 'sms' | 'whatsapp'; address: string; text: string }): ReplyOutcome {
    const person = findPersonByAddress(this.directory, reply.channel, reply.address);
    if (!person) {
      this.log.info({ channel: reply.channel }, 'reply from someone not in the directory');
      return { outcome: 'unknown-sender', answer: '' };
    }
    const at = toIsoUtc(this.clock.now());
    const intent = interpretReply(reply.text);
    const answer = (
      outcome: Exclude<ReplyOutcome['outcome'], 'unknown-sender'>,
      code?: string,
    ): ReplyOutcome => {
      this.log.info({ channel: reply.channel, personId: person.id, outcome }, 'reply');
      return { outcome, personId: person.id, answer: answerFor(outcome, person.locale, code) };
    };

    if (intent.kind === 'opt-out' || intent.kind === 'opt-in') {
      const optedOut = intent.kind === 'opt-out';
      this.store.setOptOut({
        personId: person.id,
        channel: reply.channel,
        optedOut,
        at,
        via: 'reply',
      });
      return answer(optedOut ? 'opted-out' : 'opted-in');
    }
    if (intent.kind === 'unknown') return answer('not-understood');
    if (intent.kind === 'approve') return this.approveByReply(person.id, intent, answer);

    const incidentId =
      intent.code === undefined
        ? this.store.lastOpenIncidentMessaging(person.id, reply.channel)
        : this.store.findOpenIncidentByCode(intent.code);
    if (!incidentId || !this.running.has(incidentId)) return answer('no-incident');
    // Only someone the incident has told may acknowledge it by reply: a code can be guessed.
    if (!this.store.hasMessaged(incidentId, person.id)) return answer('no-incident');
    this.acknowledge(incidentId, person.id, reply.channel);
    const code = this.running.get(incidentId)?.actor.getSnapshot().context.replyCode ?? intent.code;
    return { ...answer('acknowledged', code), incidentId };
  }

  /**
   * An approver's reply quoting an approval code (incident code and stage number): approves the
   * stage if they may, and says so either way.
   */
  private approveByReply(
    personId: string,
    intent: ReplyIntent,
    answer: (outcome: 'approved' | 'not-approved' | 'no-incident', code?: string) => ReplyOutcome,
  ): ReplyOutcome {
    const incidentId =
      intent.code === undefined ? undefined : this.store.findOpenIncidentByCode(intent.code);
    const running = incidentId === undefined ? undefined : this.running.get(incidentId);
    if (!incidentId || !running) return answer('no-incident');
    const quoted = `${intent.code ?? ''}-${intent.stageNumber ?? ''}`;
    const stage = running.version.playbook.stages[(intent.stageNumber ?? 0) - 1];
    if (!stage) return answer('not-approved', quoted);
    try {
      this.approve(incidentId, stage.id, personId);
    } catch (error) {
      if (error instanceof EngineError && error.code === 'E_ENGINE_NOT_APPROVER') {
        return answer('not-approved', quoted);
      }
      throw error;
    }
    return { ...answer('approved', quoted), incidentId };
  }

  /**
   * Resolves an incident: every pending timer is dropped and the resolution stages fire.
   *
   * @throws EngineError E_ENGINE_UNKNOWN_INCIDENT or E_ENGINE_INCIDENT_CLOSED
   */
  resolve(incidentId: string, by: string): void {
    this.apply(incidentId, { type: 'alert.resolved', at: toIsoUtc(this.clock.now()), by });
  }

  /**
   * Cancels an incident: every pending timer is dropped.
   *
   * @throws EngineError E_ENGINE_UNKNOWN_INCIDENT or E_ENGINE_INCIDENT_CLOSED
   */
  cancel(incidentId: string, by: string): void {
    this.apply(incidentId, { type: 'incident.cancelled', at: toIsoUtc(this.clock.now()), by });
  }

  /**
   * Records one approval of a stage waiting behind its gate; the stage fires when the quorum is
   * reached.
   *
   * @throws EngineError E_ENGINE_NOT_APPROVER when the person may not approve it now, or
   *   E_ENGINE_UNKNOWN_INCIDENT / E_ENGINE_INCIDENT_CLOSED
   */
  approve(incidentId: string, stageId: string, by: string): void {
    const running = this.requireRunning(incidentId);
    const context = running.actor.getSnapshot().context;
    const gate = running.version.playbook.stages.find((stage) => stage.id === stageId)?.approval;
    const person = findPerson(this.directory, by);
    const refuse = (why: string): never => {
      throw new EngineError(
        'E_ENGINE_NOT_APPROVER',
        `"${by}" cannot approve stage "${stageId}" of incident "${incidentId}": ${why}`,
      );
    };

    if (!gate) refuse('the stage has no approval gate');
    if (!context.pending.some((pending) => pending.stageId === stageId))
      refuse('nothing is waiting for approval');
    if (by === context.createdBy) refuse('the author of an incident may not approve its messages');
    if (!person || !person.roles.some((role) => gate?.roles.includes(role))) {
      refuse(
        `only people with the role ${gate?.roles.map((role) => `"${role}"`).join(' or ')} may`,
      );
    }
    if (
      context.pending.some(
        (pending) => pending.stageId === stageId && pending.approvedBy.includes(by),
      )
    ) {
      refuse('they have approved it already');
    }

    this.apply(incidentId, {
      type: 'approval.received',
      at: toIsoUtc(this.clock.now()),
      by,
      stageId,
    });
    this.log.info({ incidentId, stageId, approvedBy: by }, 'stage approved');
  }

  /**
   * Decides the next part of the oldest stage still expanding, in one transaction; returns
   * false when none is left. Parts are decided by index into the stage's (audience, person)
   * pairs; a pair decided before (a person in two audiences) is not decided twice.
   */
  expandNext(): boolean {
    const expansion = this.store.nextExpansion();
    if (!expansion) return false;
    // A closing stage goes on after its incident closed: read the incident back for it.
    const running =
      this.running.get(expansion.incidentId) ?? this.readIncident(expansion.incidentId);
    const range = {
      from: expansion.nextIndex,
      to: Math.min(expansion.total, expansion.nextIndex + EXPANSION_PART),
    };
    const skipped: Effects['skipped'] = [];
    const decision: StageDecision = {
      stageId: expansion.stageId,
      at: expansion.firedAt,
      occurrence: expansion.occurrence,
    };
    const messages = running
      ? this.decideMessages(
          running,
          decision,
          undefined,
          (skip) => skipped.push({ ...skip, stageId: decision.stageId, at: decision.at }),
          range,
        )
      : [];
    if (running && !this.running.has(expansion.incidentId)) running.actor.stop();
    let inserted = 0;
    this.store.transaction(() => {
      inserted = this.store.insertMessages(messages, { ignoreDuplicates: true });
      for (const skip of skipped) {
        this.store.appendAudit({
          incidentId: expansion.incidentId,
          at: skip.at,
          actor: 'engine',
          type: 'recipient.skipped',
          data: {
            stageId: skip.stageId,
            personId: skip.personId,
            audienceId: skip.audienceId,
            reason: skip.reason,
          },
        });
      }
      // An incident no longer running (closed, or its playbook gone) ends its expansion.
      this.store.advanceExpansion(expansion, running ? range.to : expansion.total);
      if (!running || range.to >= expansion.total) {
        this.store.appendAudit({
          incidentId: expansion.incidentId,
          at: toIsoUtc(this.clock.now()),
          actor: 'engine',
          type: 'stage.expanded',
          data: {
            stageId: expansion.stageId,
            occurrence: expansion.occurrence,
            pairs: expansion.total,
          },
        });
      }
    });
    if (inserted > 0) for (const listener of this.decidedListeners) listener();
    return true;
  }

  /** A running actor from an incident's stored snapshot and playbook version. */
  private fromStored(incident: IncidentRecord): RunningIncident {
    const version = this.resolveVersion(incident.playbookVersionId);
    const actor = createActor(version.machine, {
      snapshot: incident.snapshot as never,
      input: {
        incidentId: incident.id,
        startedAt: incident.startedAt,
        createdBy: incident.createdBy,
      },
    });
    actor.start();
    return this.toRunning(incident.id, version, actor, incident.variables);
  }

  /** An incident as stored, closed or open, for deciding the rest of its stages. */
  private readIncident(incidentId: string): RunningIncident | undefined {
    const incident = this.store.getIncident(incidentId);
    if (!incident) return undefined;
    try {
      return this.fromStored(incident);
    } catch (error) {
      this.log.error({ err: error, incidentId }, 'incident cannot be read to expand its stage');
      return undefined;
    }
  }

  /** Decides every part of every stage still expanding, at once (simulations, tests). */
  expandAll(): number {
    let parts = 0;
    while (this.expandNext()) parts++;
    return parts;
  }

  /**
   * Expands large stages part by part, yielding to the event loop between parts so the
   * dispatcher sends the first parts while later ones are decided.
   */
  private scheduleExpansion(): void {
    if (this.isExpanding || !this.isStarted) return;
    this.isExpanding = true;
    const step = (): void => {
      let more: boolean;
      try {
        more = this.isStarted && this.expandNext();
      } catch (error) {
        this.log.error({ err: error }, 'stage expansion failed; retrying');
        this.isExpanding = false;
        this.clock.setTimeout(() => this.scheduleExpansion(), TIMER_RETRY_MS);
        return;
      }
      if (more) setImmediate(step);
      else this.isExpanding = false;
    };
    setImmediate(step);
  }

  /** Sends `timer.fired` for every stored timer due now, earliest first, then re-arms. */
  fireDueTimers(): number {
    const now = toIsoUtc(this.clock.now());
    const due = this.store.listDueTimers(now);
    let failed = 0;
    for (const timer of due) {
      try {
        this.apply(timer.incidentId, { type: 'timer.fired', at: now, timerId: timer.timerId });
      } catch (error) {
        // The timer stays stored: dropping it would lose the escalation it stands for. It is
        // tried again after a pause, so a lasting fault does not spin.
        failed++;
        this.log.error(
          { err: error, incidentId: timer.incidentId, timerId: timer.timerId },
          'timer failed',
        );
      }
    }
    this.retryFloorMs = failed > 0 ? this.clock.now().toMillis() + TIMER_RETRY_MS : 0;
    this.arm();
    return due.length;
  }

  private apply(incidentId: string, event: IncidentEvent, alsoWrite?: () => void): void {
    const running = this.requireRunning(incidentId);
    const before = running.actor.getSnapshot().context;
    running.actor.send(event);
    const context = running.actor.getSnapshot().context;
    if (context === before) return;

    const skipped = context.skipped.slice(before.skipped.length);
    try {
      const effects = this.effectsOf(
        running,
        context.fired.slice(before.fired.length),
        context.requested.slice(before.requested.length),
      );
      this.store.transaction(() => {
        alsoWrite?.();
        this.store.appendAudit({
          incidentId,
          at: event.at,
          actor: 'by' in event ? event.by : 'timer',
          type: event.type,
          data: describeEvent(event),
        });
        for (const decision of skipped) {
          this.store.appendAudit({
            incidentId,
            at: decision.at,
            actor: 'engine',
            type: 'stage.skipped',
            data: { stageId: decision.stageId, reason: decision.reason ?? null },
          });
        }
        // Closing: what the incident had decided but not yet sent (approval requests, pages
        // held for quiet hours or waiting for a retry) and the undecided parts of large stages
        // are withdrawn before the closing stages are written, so nothing of the incident
        // follows its all-clear; messages already in flight still land.
        if (event.type === 'alert.resolved' || event.type === 'incident.cancelled') {
          if (!this.isDryRun) this.store.withdrawUnsent(incidentId, event.at);
          for (const dropped of this.store.dropExpansions(incidentId)) {
            this.store.appendAudit({
              incidentId,
              at: event.at,
              actor: 'engine',
              type: 'stage.expansion-dropped',
              data: {
                stageId: dropped.stageId,
                occurrence: dropped.occurrence,
                undecided: dropped.total - dropped.nextIndex,
              },
            });
          }
        }
        this.persist(running, effects, event.at);
      });
      this.afterCommit(effects.messages.length);
    } catch (error) {
      // The actor ran ahead of the database; put it back where the database is.
      this.reload(incidentId);
      throw error;
    }

    if (running.actor.getSnapshot().status === 'done') {
      this.running.delete(incidentId);
      running.log.info({ status: this.statusOf(running) }, 'incident closed');
    }
  }

  /** The outbox rows a transition decided: its fired stages and its approval requests. */
  private effectsOf(
    running: RunningIncident,
    fired: StageDecision[],
    requested: StageDecision[],
  ): Effects {
    const skipped: Effects['skipped'] = [];
    const expansions: ExpansionRecord[] = [];
    const tallies: Effects['tallies'] = new Map();
    const messages = fired.flatMap((decision) => {
      const total = countRecipientPairs(running.version.playbook, this.directory, decision.stageId);
      const sample = this.sampleLargeStages;
      if (sample !== undefined && total > sample) {
        tallies.set(
          `${decision.stageId}:${decision.occurrence}`,
          tallyRecipients(
            running.version.playbook,
            this.directory,
            decision.stageId,
            this.store.listOptOuts(),
          ),
        );
        return this.decideMessages(running, decision, undefined, undefined, {
          from: 0,
          to: sample,
        });
      }
      const range =
        total > EXPANSION_FIRST_PART ? { from: 0, to: EXPANSION_FIRST_PART } : undefined;
      if (range) {
        expansions.push({
          incidentId: running.id,
          stageId: decision.stageId,
          occurrence: decision.occurrence,
          firedAt: decision.at,
          nextIndex: range.to,
          total,
        });
      }
      return this.decideMessages(
        running,
        decision,
        undefined,
        (skip) => skipped.push({ ...skip, stageId: decision.stageId, at: decision.at }),
        range,
      );
    });
    const requests = requested.flatMap((decision) =>
      decideApprovalRequests({
        playbook: running.version.playbook,
        directory: this.directory,
        incidentId: running.id,
        createdBy: running.actor.getSnapshot().context.createdBy,
        decision,
        ...(running.actor.getSnapshot().context.replyCode === undefined
          ? {}
          : { replyCode: running.actor.getSnapshot().context.replyCode }),
      }),
    );
    return {
      fired,
      requested,
      messages: [...messages, ...requests],
      skipped,
      expansions,
      tallies,
    };
  }

  private persist(running: RunningIncident, effects: Effects, at: string): void {
    const context = running.actor.getSnapshot().context;
    this.store.updateIncident(running.id, {
      status: this.statusOf(running),
      snapshot: running.actor.getPersistedSnapshot(),
      updatedAt: at,
    });
    this.store.replaceTimers(
      running.id,
      context.timers.map((timer) => ({
        incidentId: running.id,
        timerId: timer.id,
        dueAt: timer.dueAt,
      })),
    );
    for (const decision of effects.fired) {
      const tally = effects.tallies.get(`${decision.stageId}:${decision.occurrence}`);
      const count = effects.messages.filter(
        (message) => message.stageId === decision.stageId,
      ).length;
      this.store.appendAudit({
        incidentId: running.id,
        at: decision.at,
        actor: 'engine',
        type: 'stage.fired',
        data: {
          stageId: decision.stageId,
          occurrence: decision.occurrence,
          messages: count,
          ...(tally
            ? { sampled: true, wouldSend: tally.messages, byChannel: tally.byChannel }
            : {}),
        },
      });
      running.log.info({ stageId: decision.stageId, messages: count }, 'stage fired');
    }
    for (const decision of effects.requested) {
      const approvers = effects.messages.filter(
        (message) => message.stageId === approvalStageId(decision.stageId),
      ).length;
      this.store.appendAudit({
        incidentId: running.id,
        at: decision.at,
        actor: 'engine',
        type: 'approval.requested',
        data: { stageId: decision.stageId, occurrence: decision.occurrence, approvers },
      });
      running.log.info({ stageId: decision.stageId, approvers }, 'approval requested');
    }
    this.store.insertMessages(effects.messages);
    for (const expansion of effects.expansions) this.store.insertExpansion(expansion);
    for (const skip of effects.skipped) {
      this.store.appendAudit({
        incidentId: running.id,
        at: skip.at,
        actor: 'engine',
        type: 'recipient.skipped',
        data: {
          stageId: skip.stageId,
          personId: skip.personId,
          audienceId: skip.audienceId,
          reason: skip.reason,
        },
      });
    }
  }

  private decideMessages(
    running: RunningIncident,
    decision: StageDecision,
    fallbackFrom?: DecideMessagesInput['fallbackFrom'],
    onSkipped?: DecideMessagesInput['onSkipped'],
    range?: DecideMessagesInput['range'],
  ): NewOutboxMessage[] {
    return decideMessages({
      ...(fallbackFrom ? { fallbackFrom } : {}),
      ...(onSkipped ? { onSkipped } : {}),
      ...(range ? { range } : {}),
      playbook: running.version.playbook,
      directory: this.directory,
      templates: this.templates,
      incidentId: running.id,
      status: this.statusOf(running),
      variables: running.variables,
      context: running.actor.getSnapshot().context,
      decision,
      log: running.log,
      optOuts: this.store.listOptOuts(),
    });
  }

  private afterCommit(messageCount: number): void {
    if (messageCount > 0) {
      for (const listener of this.decidedListeners) listener();
      // A stage too large for one transaction goes on in parts.
      if (!this.isExpanding && this.store.nextExpansion()) this.scheduleExpansion();
    }
    this.arm();
  }

  private arm(): void {
    if (!this.isStarted) return;
    if (this.timerHandle !== undefined) this.clock.clearTimeout(this.timerHandle);
    this.timerHandle = undefined;

    const next = this.store.nextTimer();
    if (!next) return;
    const nowMs = this.clock.now().toMillis();
    const dueMs = Math.max(DateTime.fromISO(next.dueAt).toMillis(), this.retryFloorMs) - nowMs;
    this.timerHandle = this.clock.setTimeout(
      () => {
        this.timerHandle = undefined;
        this.fireDueTimers();
      },
      Math.min(Math.max(0, dueMs), MAX_TIMER_DELAY_MS),
    );
  }

  private requireRunning(incidentId: string): RunningIncident {
    const running = this.running.get(incidentId);
    if (running) return running;
    const stored = this.store.getIncident(incidentId);
    if (!stored) {
      throw new EngineError(
        'E_ENGINE_UNKNOWN_INCIDENT',
        `no incident has id "${incidentId}"; list incidents with GET /api/incidents`,
      );
    }
    throw new EngineError(
      'E_ENGINE_INCIDENT_CLOSED',
      `incident "${incidentId}" is ${stored.status} and takes no more events`,
    );
  }

  private reload(incidentId: string): void {
    const running = this.running.get(incidentId);
    running?.actor.stop();
    this.running.delete(incidentId);
    const stored = this.store.getIncident(incidentId);
    if (!stored || stored.status !== 'open') return;
    this.running.set(incidentId, this.fromStored(stored));
  }

  /**
   * Who must acknowledge, fixed at the start from the directory so a restart or a directory
   * change does not move the goalposts of a running incident.
   */
  private ackRule(playbook: LoadedPlaybook): { ackRequired: number; ackFrom: string[] | null } {
    const rule = playbook.definition.acknowledgement;
    const audience =
      rule?.audience === undefined ? undefined : playbook.definition.audiences[rule.audience];
    // Chat rooms cannot answer: only people with a phone or an email can acknowledge.
    const from = audience
      ? selectPeople(this.directory, audience.select)
          .filter((person) => person.phone !== undefined || person.email !== undefined)
          .map((person) => person.id)
      : null;
    switch (rule?.mode ?? 'first') {
      case 'first':
        return { ackRequired: 1, ackFrom: from };
      case 'quorum':
        return { ackRequired: rule?.quorum ?? 1, ackFrom: from };
      case 'all':
        return { ackRequired: Math.max(1, from?.length ?? 1), ackFrom: from };
    }
  }

  private resolveVersion(versionId: number): PlaybookVersion {
    const cached = this.versions.get(versionId);
    if (cached) return cached;
    const stored = this.store.getPlaybookVersion(versionId);
    if (!stored) {
      throw new EngineError(
        'E_ENGINE_SNAPSHOT',
        `playbook version ${versionId} is missing from the database; restore it from a backup`,
      );
    }
    try {
      const playbook = parsePlaybook(stored.source, stored.file, { templates: this.templates });
      const version = { id: versionId, playbook, machine: buildMachine(playbook.stages) };
      this.versions.set(versionId, version);
      return version;
    } catch (cause) {
      throw new EngineError(
        'E_ENGINE_SNAPSHOT',
        `stored playbook version ${versionId} ("${stored.name}") no longer loads`,
        { cause },
      );
    }
  }

  private toRunning(
    id: string,
    version: PlaybookVersion,
    actor: Actor<IncidentMachine>,
    variables: VariableValues,
  ): RunningIncident {
    const log = this.log.child({ incidentId: id, playbookId: version.playbook.name });
    return { id, version, actor, variables, log };
  }

  /** Four digits no open incident uses, for replies to quote (six once four run short). */
  private newReplyCode(): string {
    const taken = this.store.openReplyCodes();
    const [low, high] = taken.size < 4_000 ? [1_000, 10_000] : [100_000, 1_000_000];
    for (;;) {
      const code = String(randomInt(low, high));
      if (!taken.has(code)) return code;
    }
  }

  private statusOf(running: RunningIncident): IncidentStatus {
    const snapshot = running.actor.getSnapshot();
    if (snapshot.matches('resolved')) return 'resolved';
    if (snapshot.matches('cancelled')) return 'cancelled';
    return 'open';
  }
}

/** Provider codes that say the person unsubscribed: Twilio 21610 (replied STOP). */
const UNSUBSCRIBED_CODES = new Set(['21610']);

function describeEvent(event: IncidentEvent): Record<string, unknown> {
  switch (event.type) {
    case 'timer.fired':
      return { timerId: event.timerId };
    case 'approval.received':
      return { stageId: event.stageId };
    case 'ack.received':
    case 'alert.resolved':
    case 'incident.cancelled':
      return {};
  }
}
