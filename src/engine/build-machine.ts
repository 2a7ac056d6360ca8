import { DateTime } from 'luxon';
import { assign, setup } from 'xstate';

import type { Stage, StageEvent } from '../playbook/index.js';
import { isWithin, nextOpening } from '../time/index.js';

/** A stored deadline: when it passes, the engine sends `timer.fired` with its id. */
export interface IncidentTimer {
  id: string;
  stageId: string;
  dueAt: string;
  /** Which firing of the stage this timer is for: 1, then 2, 3... for a repeating stage. */
  occurrence: number;
}

/** A stage the machine decided to fire, or to skip, and when. */
export interface StageDecision {
  stageId: string;
  at: string;
  occurrence: number;
  /** Why a stage was skipped, for the audit log. */
  reason?: string;
}

/** A gated stage that is due and waits for its approvals. */
export interface PendingApproval {
  stageId: string;
  occurrence: number;
  requestedAt: string;
  approvedBy: string[];
}

/** What the machine remembers; all of it lands in the persisted snapshot. */
export interface IncidentContext {
  incidentId: string;
  /** The code replies quote; absent on incidents started before codes existed. */
  replyCode?: string;
  startedAt: string;
  createdBy: string;
  acknowledgedBy: string | null;
  acknowledgedAt: string | null;
  /** Everyone who acknowledged so far, in order; `acknowledgedAt` is set when enough did. */
  acks: string[];
  /** How many different people must acknowledge, and who counts (null: anyone). */
  ackRequired: number;
  ackFrom: string[] | null;
  closedAt: string | null;
  timers: IncidentTimer[];
  fired: StageDecision[];
  skipped: StageDecision[];
  /** Approval requests made, in order; the engine tells the approvers about each new one. */
  requested: StageDecision[];
  pending: PendingApproval[];
}

/** What starts a machine. */
export interface IncidentInput {
  incidentId: string;
  replyCode?: string;
  startedAt: string;
  createdBy: string;
  ackRequired?: number;
  ackFrom?: string[] | null;
}

/**
 * Events the machine takes. Each carries the instant it happened, stamped by the engine from its
 * clock, so the machine is a pure function of its events and a restored snapshot continues
 * exactly where it stopped.
 */
export type IncidentEvent =
  | { type: 'ack.received'; at: string; by: string }
  | { type: 'approval.received'; at: string; by: string; stageId: string }
  | { type: 'alert.resolved'; at: string; by: string }
  | { type: 'incident.cancelled'; at: string; by: string }
  | { type: 'timer.fired'; at: string; timerId: string };

type TimedStage = Extract<Stage, { kind: 'timed' }>;
type Changes = Pick<IncidentContext, 'timers' | 'fired' | 'skipped' | 'requested' | 'pending'>;

/**
 * Compiles a playbook's stages into the incident lifecycle: `open` (unacknowledged, then
 * acknowledged) until `resolved` or `cancelled`. Timed stages become stored timers; a timer for
 * a stage that is skipped on acknowledgement is dropped by the acknowledgement itself, so an
 * escalation racing an acknowledgement always loses. A stage behind an approval gate waits, when
 * due, for its quorum of approvals from people other than the incident's author, or for its
 * timeout and the policy that follows.
 */
export function buildMachine(stages: readonly Stage[]) {
  const timed = stages.flatMap((stage) => (stage.kind === 'timed' ? [stage] : []));
  const byId = new Map(stages.map((stage) => [stage.id, stage]));
  const onEvent = (event: StageEvent): string[] =>
    stages.flatMap((stage) => (stage.kind === 'event' && stage.on === event ? [stage.id] : []));

  /**
   * Records a stage as fired. A stage with an acknowledgement timeout, fired while nobody has
   * acknowledged, starts the clock after which the `ack-timed-out` stages fire.
   */
  function fire(
    changes: Changes,
    stageId: string,
    at: string,
    occurrence: number,
    acknowledged: boolean,
  ): void {
    changes.fired.push({ stageId, at, occurrence });
    const timeout = byId.get(stageId)?.ackTimeout;
    if (!timeout || acknowledged) return;
    // A repeat does not move the deadline: the time to answer runs from the first page that
    // is still unanswered.
    const id = `ack:${stageId}`;
    if (changes.timers.some((timer) => timer.id === id)) return;
    changes.timers.push({ id, stageId, dueAt: plus(at, timeout.toMillis()), occurrence });
  }

  /** An event stage can fire several times (two gates time out); each firing is its own. */
  function nextOccurrence(changes: Changes, stageId: string): number {
    return changes.fired.filter((decision) => decision.stageId === stageId).length + 1;
  }

  /** Fires a due stage, or opens its approval gate. */
  function release(
    changes: Changes,
    stageId: string,
    at: string,
    occurrence: number,
    acknowledged: boolean,
  ): void {
    const approval = byId.get(stageId)?.approval;
    if (!approval) {
      fire(changes, stageId, at, occurrence, acknowledged);
      return;
    }
    changes.requested.push({ stageId, at, occurrence });
    changes.pending.push({ stageId, occurrence, requestedAt: at, approvedBy: [] });
    if (approval.timeout) {
      const dueAt = plus(at, approval.timeout.toMillis());
      changes.timers.push({ id: `approval:${stageId}`, stageId, dueAt, occurrence });
    }
  }

  function nextRepeat(
    stage: TimedStage,
    from: string,
    occurrence: number,
    now = from,
  ): IncidentTimer | undefined {
    if (!stage.every || stage.every.toMillis() <= 0) return undefined;
    const nowMs = DateTime.fromISO(now).toMillis();
    let due = DateTime.fromISO(from, { zone: 'utc' }).plus(stage.every);
    while (due.toMillis() <= nowMs) due = due.plus(stage.every);
    return {
      id: `stage:${stage.id}`,
      stageId: stage.id,
      dueAt: toIso(due),
      occurrence: occurrence + 1,
    };
  }

  /** When a stage held to business hours may fire, if not now. */
  function waitForBusinessHours(stage: TimedStage, at: string): string | undefined {
    if (!stage.businessHours) return undefined;
    const instant = DateTime.fromISO(at, { zone: 'utc' });
    if (isWithin(stage.businessHours, instant)) return undefined;
    // A window that never opens must not hold the stage forever, nor wake it in a loop.
    const opening = nextOpening(stage.businessHours, instant);
    return opening && opening > instant ? toIso(opening) : undefined;
  }

  function isSkippedOnAck(stageId: string): boolean {
    return timed.some(
      (stage) =>
        stage.id === stageId && (stage.unlessAcknowledged || stage.until === 'acknowledged'),
    );
  }

  return setup({
    types: {
      context: {} as IncidentContext,
      events: {} as IncidentEvent,
      input: {} as IncidentInput,
    },
    actions: {
      scheduleStages: assign(({ context }) => {
        const changes = copy(context);
        for (const stage of timed) {
          const opening = waitForBusinessHours(stage, context.startedAt);
          if (stage.after.toMillis() === 0 && opening) {
            changes.timers.push({
              id: `stage:${stage.id}`,
              stageId: stage.id,
              dueAt: opening,
              occurrence: 1,
            });
          } else if (stage.after.toMillis() === 0) {
            release(changes, stage.id, context.startedAt, 1, false);
            const next = nextRepeat(stage, context.startedAt, 1);
            if (next) changes.timers.push(next);
          } else {
            const dueAt = plus(context.startedAt, stage.after.toMillis());
            changes.timers.push({
              id: `stage:${stage.id}`,
              stageId: stage.id,
              dueAt,
              occurrence: 1,
            });
          }
        }
        return changes;
      }),
      fireTimer: assign(({ context, event }) => {
        if (event.type !== 'timer.fired') return {};
        const timer = context.timers.find((candidate) => candidate.id === event.timerId);
        if (!timer) return {};
        const changes = copy(context);
        changes.timers = changes.timers.filter((candidate) => candidate !== timer);

        if (timer.id.startsWith('approval:')) {
          timeOutApproval(changes, timer, event.at, context.acknowledgedAt !== null);
          return changes;
        }
        if (timer.id.startsWith('ack:')) {
          // An acknowledgement drops this timer, so when it fires nobody has answered in time.
          for (const stageId of onEvent('ack-timed-out'))
            release(changes, stageId, event.at, nextOccurrence(changes, stageId), false);
          return changes;
        }

        const stage = timed.find((candidate) => candidate.id === timer.stageId);
        const opening = stage && waitForBusinessHours(stage, event.at);
        if (opening) {
          changes.timers.push({ ...timer, dueAt: opening });
          return changes;
        }
        if (stage?.unlessAcknowledged && context.acknowledgedAt !== null) {
          changes.skipped.push({
            stageId: timer.stageId,
            at: event.at,
            occurrence: timer.occurrence,
            reason: 'acknowledged',
          });
          return changes;
        }
        release(
          changes,
          timer.stageId,
          event.at,
          timer.occurrence,
          context.acknowledgedAt !== null,
        );
        // The next repeat counts from when this one was due, not from when it ran, so a late
        // wake-up does not shift the whole series; repeats missed while down are not sent in a
        // burst.
        const next = stage && nextRepeat(stage, timer.dueAt, timer.occurrence, event.at);
        if (next) changes.timers.push(next);
        return changes;
      }),
      approve: assign(({ context, event }) => {
        if (event.type !== 'approval.received') return {};
        const changes = copy(context);
        const pending = changes.pending.find((candidate) => candidate.stageId === event.stageId);
        const quorum = byId.get(event.stageId)?.approval?.quorum ?? 1;
        if (!pending) return {};
        const approvedBy = [...pending.approvedBy, event.by];
        if (approvedBy.length < quorum) {
          changes.pending = changes.pending.map((candidate) =>
            candidate === pending ? { ...candidate, approvedBy } : candidate,
          );
          return changes;
        }
        changes.pending = changes.pending.filter((candidate) => candidate !== pending);
        changes.timers = changes.timers.filter((timer) => timer.id !== `approval:${event.stageId}`);
        fire(
          changes,
          pending.stageId,
          event.at,
          pending.occurrence,
          context.acknowledgedAt !== null,
        );
        return changes;
      }),
      recordAck: assign(({ context, event }) => {
        if (event.type !== 'ack.received') return {};
        return { acks: [...context.acks, event.by] };
      }),
      acknowledge: assign(({ context, event }) => {
        if (event.type !== 'ack.received') return {};
        const changes = copy(context);
        // Escalations still to come, or waiting behind their approval gate, are skipped; the
        // acknowledgement clocks stop.
        const dropped = context.timers.filter(
          (timer) => !timer.id.startsWith('ack:') && isSkippedOnAck(timer.stageId),
        );
        const waiting = context.pending.filter((pending) => isSkippedOnAck(pending.stageId));
        changes.timers = context.timers.filter(
          (timer) => !timer.id.startsWith('ack:') && !dropped.includes(timer),
        );
        changes.pending = context.pending.filter((pending) => !waiting.includes(pending));
        const skipped = new Map<string, number>();
        for (const entry of [...dropped, ...waiting]) skipped.set(entry.stageId, entry.occurrence);
        for (const [stageId, occurrence] of skipped) {
          changes.skipped.push({ stageId, at: event.at, occurrence, reason: 'acknowledged' });
        }
        for (const stageId of onEvent('acknowledged')) release(changes, stageId, event.at, 1, true);
        return { ...changes, acknowledgedBy: event.by, acknowledgedAt: event.at };
      }),
      close: assign(({ context, event }) => {
        const closing = event.type === 'alert.resolved' ? 'resolved' : 'cancelled';
        const changes = copy(context);
        // An acknowledgement clock is not a stage; only stages still to come are skipped, each
        // once, though a gated stage has both its approval clock and its waiting approval.
        const skipped = new Map<string, number>();
        for (const timer of context.timers) {
          if (!timer.id.startsWith('ack:')) skipped.set(timer.stageId, timer.occurrence);
        }
        for (const pending of context.pending) skipped.set(pending.stageId, pending.occurrence);
        for (const [stageId, occurrence] of skipped) {
          changes.skipped.push({ stageId, at: event.at, occurrence, reason: closing });
        }
        changes.timers = [];
        changes.pending = [];
        // Closing sends its own stages at once; an approval gate on them is not waited for,
        // because nothing would be left to approve them.
        for (const stageId of onEvent(closing))
          changes.fired.push({ stageId, at: event.at, occurrence: 1 });
        return { ...changes, closedAt: event.at };
      }),
    },
    guards: {
      hasTimer: ({ context, event }) =>
        event.type === 'timer.fired' && context.timers.some((timer) => timer.id === event.timerId),
      countsAck: ({ context, event }) => countsAck(context, event),
      completesAck: ({ context, event }) =>
        countsAck(context, event) && context.acks.length + 1 >= context.ackRequired,
      canApprove: ({ context, event }) =>
        event.type === 'approval.received' &&
        event.by !== context.createdBy &&
        context.pending.some(
          (pending) => pending.stageId === event.stageId && !pending.approvedBy.includes(event.by),
        ),
    },
  }).createMachine({
    id: 'incident',
    context: ({ input }) => ({
      incidentId: input.incidentId,
      ...(input.replyCode === undefined ? {} : { replyCode: input.replyCode }),
      startedAt: input.startedAt,
      createdBy: input.createdBy,
      acknowledgedBy: null,
      acknowledgedAt: null,
      acks: [],
      ackRequired: input.ackRequired ?? 1,
      ackFrom: input.ackFrom ?? null,
      closedAt: null,
      timers: [],
      fired: [],
      skipped: [],
      requested: [],
      pending: [],
    }),
    initial: 'open',
    states: {
      open: {
        entry: 'scheduleStages',
        initial: 'unacknowledged',
        states: {
          unacknowledged: {
            on: {
              'ack.received': [
                {
                  guard: 'completesAck',
                  target: 'acknowledged',
                  actions: ['recordAck', 'acknowledge'],
                },
                { guard: 'countsAck', actions: 'recordAck' },
              ],
            },
          },
          acknowledged: {},
        },
        on: {
          'timer.fired': { guard: 'hasTimer', actions: 'fireTimer' },
          'approval.received': { guard: 'canApprove', actions: 'approve' },
          'alert.resolved': { target: 'resolved', actions: 'close' },
          'incident.cancelled': { target: 'cancelled', actions: 'close' },
        },
      },
      resolved: { type: 'final' },
      cancelled: { type: 'final' },
    },
  });

  function timeOutApproval(
    changes: Changes,
    timer: IncidentTimer,
    at: string,
    acknowledged: boolean,
  ): void {
    const pending = changes.pending.find((candidate) => candidate.stageId === timer.stageId);
    if (!pending) return;
    changes.pending = changes.pending.filter((candidate) => candidate !== pending);
    const policy = byId.get(timer.stageId)?.approval?.onTimeout ?? 'hold';
    switch (policy) {
      case 'send':
        fire(changes, pending.stageId, at, pending.occurrence, acknowledged);
        return;
      case 'hold':
        changes.skipped.push({
          stageId: pending.stageId,
          at,
          occurrence: pending.occurrence,
          reason: 'approval timed out',
        });
        return;
      case 'escalate':
        changes.skipped.push({
          stageId: pending.stageId,
          at,
          occurrence: pending.occurrence,
          reason: 'approval timed out',
        });
        for (const stageId of onEvent('approval-timed-out'))
          fire(changes, stageId, at, nextOccurrence(changes, stageId), acknowledged);
        return;
    }
  }
}

/** An acknowledgement counts once per person, and only from the people the playbook names. */
function countsAck(context: IncidentContext, event: IncidentEvent): boolean {
  if (event.type !== 'ack.received' || context.acks.includes(event.by)) return false;
  return context.ackFrom === null || context.ackFrom.includes(event.by);
}

/** The machine type for one playbook. */
export type IncidentMachine = ReturnType<typeof buildMachine>;

function copy(context: IncidentContext): Changes {
  return {
    timers: [...context.timers],
    fired: [...context.fired],
    skipped: [...context.skipped],
    requested: [...context.requested],
    pending: [...context.pending],
  };
}

function plus(iso: string, ms: number): string {
  return toIso(DateTime.fromISO(iso, { zone: 'utc' }).plus({ milliseconds: ms }));
}

function toIso(instant: DateTime): string {
  return instant.toUTC().toISO() ?? '';
}
