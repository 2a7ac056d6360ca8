import { DateTime } from 'luxon';
import { assign, setup } from 'xstate';

import type { Stage, StageEvent } from '../playbook/index.js';

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
}

/** What the machine remembers; all of it lands in the persisted snapshot. */
export interface IncidentContext {
  incidentId: string;
  startedAt: string;
  acknowledgedBy: string | null;
  acknowledgedAt: string | null;
  closedAt: string | null;
  timers: IncidentTimer[];
  fired: StageDecision[];
  skipped: StageDecision[];
}

/** What starts a machine. */
export interface IncidentInput {
  incidentId: string;
  startedAt: string;
}

/**
 * Events the machine takes. Each carries the instant it happened, stamped by the engine from its
 * clock, so the machine is a pure function of its events and a restored snapshot continues
 * exactly where it stopped.
 */
export type IncidentEvent =
  | { type: 'ack.received'; at: string; by: string }
  | { type: 'alert.resolved'; at: string; by: string }
  | { type: 'incident.cancelled'; at: string; by: string }
  | { type: 'timer.fired'; at: string; timerId: string };

/**
 * Compiles a playbook's stages into the incident lifecycle: `open` (unacknowledged, then
 * acknowledged) until `resolved` or `cancelled`. Timed stages become stored timers; a timer for
 * a stage that is skipped on acknowledgement is dropped by the acknowledgement itself, so an
 * escalation racing an acknowledgement always loses.
 */
export function buildMachine(stages: readonly Stage[]) {
  const timed = stages.flatMap((stage) => (stage.kind === 'timed' ? [stage] : []));
  const onEvent = (event: StageEvent): string[] =>
    stages.flatMap((stage) => (stage.kind === 'event' && stage.on === event ? [stage.id] : []));

  return setup({
    types: {
      context: {} as IncidentContext,
      events: {} as IncidentEvent,
      input: {} as IncidentInput,
    },
    actions: {
      scheduleStages: assign(({ context }) => {
        const start = DateTime.fromISO(context.startedAt, { zone: 'utc' });
        const fired = [...context.fired];
        const timers: IncidentTimer[] = [];
        for (const stage of timed) {
          if (stage.after.toMillis() === 0) {
            fired.push({ stageId: stage.id, at: context.startedAt, occurrence: 1 });
            const next = nextRepeat(stage, context.startedAt, 1);
            if (next) timers.push(next);
          } else {
            const dueAt = start.plus(stage.after).toISO() ?? context.startedAt;
            timers.push({ id: `stage:${stage.id}`, stageId: stage.id, dueAt, occurrence: 1 });
          }
        }
        return { fired, timers };
      }),
      fireTimer: assign(({ context, event }) => {
        if (event.type !== 'timer.fired') return {};
        const timer = context.timers.find((candidate) => candidate.id === event.timerId);
        if (!timer) return {};
        const timers = context.timers.filter((candidate) => candidate !== timer);
        const stage = timed.find((candidate) => candidate.id === timer.stageId);
        const decision = { stageId: timer.stageId, at: event.at, occurrence: timer.occurrence };
        if (stage?.unlessAcknowledged && context.acknowledgedAt !== null) {
          return { timers, skipped: [...context.skipped, decision] };
        }
        // The next repeat counts from when this one was due, not from when it ran, so a late
        // wake-up does not shift the whole series; repeats missed while down are not sent in a
        // burst.
        const next = stage && nextRepeat(stage, timer.dueAt, timer.occurrence, event.at);
        return { timers: next ? [...timers, next] : timers, fired: [...context.fired, decision] };
      }),
      acknowledge: assign(({ context, event }) => {
        if (event.type !== 'ack.received') return {};
        const dropped = context.timers.filter((timer) => isSkippedOnAck(timer.stageId));
        return {
          acknowledgedBy: event.by,
          acknowledgedAt: event.at,
          timers: context.timers.filter((timer) => !isSkippedOnAck(timer.stageId)),
          skipped: [
            ...context.skipped,
            ...dropped.map((timer) => ({
              stageId: timer.stageId,
              at: event.at,
              occurrence: timer.occurrence,
            })),
          ],
          fired: [...context.fired, ...decide(onEvent('acknowledged'), event.at)],
        };
      }),
      close: assign(({ context, event }) => {
        const closing = event.type === 'alert.resolved' ? 'resolved' : 'cancelled';
        return {
          closedAt: event.at,
          skipped: [
            ...context.skipped,
            ...context.timers.map((timer) => ({
              stageId: timer.stageId,
              at: event.at,
              occurrence: 1,
            })),
          ],
          timers: [],
          fired: [...context.fired, ...decide(onEvent(closing), event.at)],
        };
      }),
    },
    guards: {
      hasTimer: ({ context, event }) =>
        event.type === 'timer.fired' && context.timers.some((timer) => timer.id === event.timerId),
    },
  }).createMachine({
    id: 'incident',
    context: ({ input }) => ({
      incidentId: input.incidentId,
      startedAt: input.startedAt,
      acknowledgedBy: null,
      acknowledgedAt: null,
      closedAt: null,
      timers: [],
      fired: [],
      skipped: [],
    }),
    initial: 'open',
    states: {
      open: {
        entry: 'scheduleStages',
        initial: 'unacknowledged',
        states: {
          unacknowledged: {
            on: { 'ack.received': { target: 'acknowledged', actions: 'acknowledge' } },
          },
          acknowledged: {},
        },
        on: {
          'timer.fired': { guard: 'hasTimer', actions: 'fireTimer' },
          'alert.resolved': { target: 'resolved', actions: 'close' },
          'incident.cancelled': { target: 'cancelled', actions: 'close' },
        },
      },
      resolved: { type: 'final' },
      cancelled: { type: 'final' },
    },
  });

  function isSkippedOnAck(stageId: string): boolean {
    return timed.some(
      (stage) =>
        stage.id === stageId && (stage.unlessAcknowledged || stage.until === 'acknowledged'),
    );
  }

  function nextRepeat(
    stage: (typeof timed)[number],
    from: string,
    occurrence: number,
    now: string = from,
  ): IncidentTimer | undefined {
    if (!stage.every || stage.every.toMillis() <= 0) return undefined;
    const nowMs = DateTime.fromISO(now).toMillis();
    let due = DateTime.fromISO(from, { zone: 'utc' }).plus(stage.every);
    while (due.toMillis() <= nowMs) due = due.plus(stage.every);
    const dueAt = due.toUTC().toISO() ?? from;
    return { id: `stage:${stage.id}`, stageId: stage.id, dueAt, occurrence: occurrence + 1 };
  }
}

/** The machine type for one playbook. */
export type IncidentMachine = ReturnType<typeof buildMachine>;

function decide(stageIds: readonly string[], at: string): StageDecision[] {
  return stageIds.map((stageId) => ({ stageId, at, occurrence: 1 }));
}
