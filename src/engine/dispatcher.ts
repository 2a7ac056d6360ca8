import { setMaxListeners } from 'node:events';

import { DateTime } from 'luxon';

import { toIsoUtc } from '../clock.js';
import type { Clock } from '../clock.js';
import type { ChannelAdapter } from '../channels/index.js';
import { ChannelError } from '../errors.js';
import { lazyChild, noopLogger } from '../logger.js';
import type { Logger } from '../logger.js';
import type { IncidentStore, OutboxRecord, SendOutcome } from '../store/index.js';
import { RateLimits } from './rate-limits.js';
import type { ChannelLimit } from './rate-limits.js';

/** Why a person is tried on the next channel: the message failed, or its receipt is overdue. */
export type FallbackReason = 'failed' | 'receipt-overdue';

/** Settings of the outbox dispatcher. */
export interface DispatcherOptions {
  store: IncidentStore;
  clock: Clock;
  channels: ReadonlyMap<string, ChannelAdapter>;
  log?: Logger;
  /** Sends in flight at once. */
  concurrency?: number;
  /** How long one send may take before it is abandoned and retried. */
  sendTimeoutMs?: number;
  /** Attempts before a retryable failure becomes final. */
  maxAttempts?: number;
  /**
   * Called after a message failed for good, or its delivery receipt did not come in time, so
   * the next channel can be tried.
   */
  onFailed?: (messageId: number, reason: FallbackReason) => void;
  /** How long after an ambiguous failure the provider is asked whether it took the message. */
  reconcileDelayMs?: number;
  /** The first retry's pause; each further one doubles it (with jitter). */
  backoffBaseMs?: number;
  /** Send limits per channel kind: messages per second, and the least gap per recipient. */
  limits?: Readonly<Record<string, ChannelLimit>>;
}

const DEFAULT_CONCURRENCY = 16;
const DEFAULT_SEND_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_ATTEMPTS = 5;
const BASE_BACKOFF_MS = 1_000;
const DRAIN_RETRY_MS = 1_000;
const RECONCILE_DELAY_MS = 2_000;
const RECONCILE_ATTEMPTS = 5;
// Looks again at least this often, so a deadline written by another process is not missed.
const MAX_WATCH_DELAY_MS = 60_000;

/**
 * Sends outbox rows. A row is claimed (decided → sending, with a deadline) in one transaction
 * before its request leaves, and its outcome is recorded after; a row found still sending at
 * start-up was in flight during a crash and becomes `unknown`, never re-sent silently.
 */
export class Dispatcher {
  private readonly store: IncidentStore;
  private readonly clock: Clock;
  private readonly channels: ReadonlyMap<string, ChannelAdapter>;
  private readonly log: Logger;
  private readonly concurrency: number;
  private readonly sendTimeoutMs: number;
  private readonly maxAttempts: number;
  private readonly onFailed: DispatcherOptions['onFailed'];
  private readonly reconcileDelayMs: number;
  private readonly backoffBaseMs: number;
  private readonly limits: RateLimits;
  /** When a channel at its rate limit has its next token, if rows wait for it. */
  private limitWakeAt: number | undefined;
  private inFlight = 0;
  private mayHaveWork = false;
  private isPumpScheduled = false;
  /** The last claim failed: the next idle moment looks again after a pause. */
  private hasClaimFailed = false;
  private readonly outcomes: PendingOutcome[] = [];
  private readonly idleWaiters: (() => void)[] = [];
  private retryHandle: unknown;
  private receiptHandle: unknown;
  private isStopped = false;

  constructor(options: DispatcherOptions) {
    this.store = options.store;
    this.clock = options.clock;
    this.channels = options.channels;
    this.log = options.log ?? noopLogger;
    this.concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    this.sendTimeoutMs = options.sendTimeoutMs ?? DEFAULT_SEND_TIMEOUT_MS;
    this.maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    this.onFailed = options.onFailed;
    this.reconcileDelayMs = options.reconcileDelayMs ?? RECONCILE_DELAY_MS;
    this.backoffBaseMs = options.backoffBaseMs ?? BASE_BACKOFF_MS;
    this.limits = new RateLimits(options.limits ?? {}, this.clock.now().toMillis());
  }

  /**
   * Deals with rows a previous process left in flight (claimed, answer never stored): on a
   * channel that can ask its provider, each is asked about, as after a lost answer, and ends
   * accepted (the provider has it) or is sent again (it has not); elsewhere it becomes unknown
   * and is reported, never sent again. Returns how many became unknown.
   */
  recoverInFlight(): number {
    const canAsk = (message: OutboxRecord): boolean =>
      this.channels.get(message.channel)?.reconcile !== undefined;
    const asking = this.store.listSending().filter(canAsk);
    const rows = this.store.markInFlightUnknown(toIsoUtc(this.clock.now()), canAsk);
    if (rows.length > 0 || asking.length > 0) {
      const messageIds = rows.slice(0, 20).map((row) => row.id);
      this.log.warn(
        { unknown: rows.length, reconciling: asking.length, messageIds },
        'messages in flight at a crash',
      );
    }
    for (const message of asking) {
      const channel = this.channels.get(message.channel);
      if (!channel) continue;
      const log = this.log.child({ incidentId: message.incidentId, messageId: message.id });
      // Claimed at updatedAt; the provider may have taken it from then on.
      const started = DateTime.fromISO(message.updatedAt);
      const lost = new ChannelError(
        'E_CHANNEL_OUTCOME_UNKNOWN',
        'the process stopped while the message was in flight',
        { retryable: true, ambiguous: true },
      );
      this.inFlight++;
      void this.reconcile(channel, message, lost, started, log)
        .then((outcome) => {
          this.outcomes.push({ message, outcome, started, log });
        })
        .finally(() => {
          this.inFlight--;
          this.schedulePump();
        });
    }
    return rows.length;
  }

  /** Looks for rows to send: call it whenever rows were added or became due. */
  wake(): void {
    if (this.isStopped) return;
    this.mayHaveWork = true;
    this.schedulePump();
  }

  /** Resolves when nothing is being sent, nothing due is left to claim, and outcomes are stored. */
  async idle(): Promise<void> {
    while (!this.isIdle()) {
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    }
  }

  async stop(): Promise<void> {
    this.isStopped = true;
    if (this.retryHandle !== undefined) this.clock.clearTimeout(this.retryHandle);
    if (this.receiptHandle !== undefined) this.clock.clearTimeout(this.receiptHandle);
    while (this.inFlight > 0 || this.outcomes.length > 0 || this.isPumpScheduled) {
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    }
  }

  private isIdle(): boolean {
    return (
      this.inFlight === 0 &&
      this.outcomes.length === 0 &&
      !this.isPumpScheduled &&
      (!this.mayHaveWork || this.isStopped)
    );
  }

  /**
   * One pump per turn of the event loop, whatever woke it: the outcomes of every send that
   * finished since are stored in one transaction, then the free slots are filled with rows
   * claimed in one transaction. Each claimed row's request leaves at once, so the rows a crash
   * leaves `sending` (and later `unknown`) are exactly those in flight, never ones merely queued.
   */
  private schedulePump(): void {
    if (this.isPumpScheduled) return;
    this.isPumpScheduled = true;
    setImmediate(() => {
      this.isPumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    const batch = this.outcomes.splice(0);
    const settled = batch.map(({ message, outcome }) => ({ id: message.id, outcome }));
    const free = this.concurrency - this.inFlight;
    let finals: (string | undefined)[] = [];
    if (!this.isStopped && this.mayHaveWork && free > 0) {
      // One transaction: the outcomes of what finished, and the claim of what goes next.
      const claim = this.claimParameters();
      let claimed: OutboxRecord[] = [];
      let claimError: unknown;
      try {
        ({ finals, claimed, claimError } = this.store.settleAndClaim(
          settled,
          {
            limit: free,
            now: toIsoUtc(claim.now),
            deadline: toIsoUtc(claim.deadline),
            skipping: claim.skipping,
          },
          toIsoUtc(this.clock.now()),
        ));
      } catch (error) {
        // The outcomes could not be stored either: the rows stay sending, and a restart asks
        // the provider about them rather than sending them again.
        this.log.error({ err: error, messages: batch.length }, 'send outcomes could not be stored');
        claimError = error;
        batch.length = 0;
      }
      if (claimError === undefined) {
        this.hasClaimFailed = false;
        this.startSends(claimed, free, claim);
      } else {
        this.hasClaimFailed = true;
        this.mayHaveWork = false;
        this.log.error({ err: claimError }, 'dispatch failed; retrying');
      }
    } else if (batch.length > 0) {
      try {
        finals = this.store.recordOutcomes(settled, toIsoUtc(this.clock.now()));
      } catch (error) {
        this.log.error({ err: error, messages: batch.length }, 'send outcomes could not be stored');
        batch.length = 0;
      }
    }
    this.afterSettled(batch, finals);
    if (this.isIdle()) {
      if (!this.isStopped) {
        // A failed claim (a busy database, a lease lapsed for a moment) must not leave rows
        // waiting for the next unrelated wake-up: look again after a pause.
        if (this.hasClaimFailed) this.retryLater(DRAIN_RETRY_MS);
        else this.armRetry();
        this.armReceiptWatch();
      }
      const waiters = this.idleWaiters.splice(0);
      for (const resolve of waiters) resolve();
    }
  }

  private claimParameters(): {
    now: DateTime;
    deadline: DateTime;
    skipping: string[];
    blocked: { channels: string[]; retryInMs: number } | undefined;
  } {
    const now = this.clock.now();
    const blocked = this.limits.hasRates ? this.limits.blocked(now.toMillis()) : undefined;
    return {
      now,
      deadline: now.plus({ milliseconds: this.sendTimeoutMs * 2 }),
      skipping: blocked?.channels ?? [],
      blocked,
    };
  }

  private startSends(
    claimed: readonly OutboxRecord[],
    free: number,
    claim: ReturnType<Dispatcher['claimParameters']>,
  ): void {
    const now = claim.now;
    const nowMs = now.toMillis();
    if (claimed.length < free) {
      this.mayHaveWork = false;
      // Rows may wait on a channel at its limit: look again when it has a token.
      if (claim.blocked && claim.skipping.length > 0) {
        const wakeAt = nowMs + claim.blocked.retryInMs;
        this.limitWakeAt = Math.min(this.limitWakeAt ?? wakeAt, wakeAt);
      }
    }
    // The sends claimed together leave together: one deadline (and one timer) for all of them.
    const deadline = new SendDeadline(this.clock, this.sendTimeoutMs);
    for (const message of claimed) {
      const waitMs = this.limits.take(message.channel, nowMs);
      const holdUntil =
        waitMs > 0
          ? nowMs + waitMs
          : this.limits.holdUntil(message.channel, message.address, nowMs);
      if (holdUntil !== undefined) {
        // Over the account's rate, or too soon after the last message to this person on this
        // channel: it waits, unsent.
        this.store.deferClaimed(
          message.id,
          toIsoUtc(DateTime.fromMillis(holdUntil)),
          toIsoUtc(now),
        );
        this.log.debug({ messageId: message.id, holdMs: holdUntil - nowMs }, 'message held');
        this.mayHaveWork = true;
        continue;
      }
      this.inFlight++;
      deadline.join();
      void this.sendOne(message, now, deadline.signal).finally(() => {
        deadline.leave();
        this.inFlight--;
        this.schedulePump();
      });
    }
  }

  private async sendOne(
    message: OutboxRecord,
    started: DateTime,
    signal: AbortSignal,
  ): Promise<void> {
    const log = lazyChild(this.log, {
      incidentId: message.incidentId,
      messageId: message.id,
      channel: message.channel,
    });
    const channel = this.channels.get(message.channel);
    let outcome: SendOutcome;

    if (!channel) {
      outcome = {
        status: 'failed',
        errorCode: 'E_CHANNEL_NOT_CONFIGURED',
        errorMessage: `no ${message.channel} channel is configured`,
      };
    } else {
      try {
        const receipt = await channel.send(message, signal);
        outcome = {
          status: 'accepted',
          providerId: receipt.providerId,
          provider: receipt.provider ?? channel.provider,
          receiptExpected: receipt.receiptExpected ?? false,
        };
      } catch (error) {
        try {
          outcome =
            error instanceof ChannelError && error.ambiguous
              ? await this.reconcile(channel, message, error, started, log)
              : this.toFailure(message, error);
        } catch (unexpected) {
          log.error({ err: unexpected }, 'send outcome could not be read; left unknown');
          outcome = {
            status: 'unknown',
            errorCode: 'E_CHANNEL_OUTCOME_UNKNOWN',
            errorMessage: 'the outcome of the send could not be read',
          };
        }
      }
    }
    this.outcomes.push({ message, outcome, started, log });
  }

  /** Logs the outcomes just stored, and hands every message that failed for good to the fallback. */
  private afterSettled(
    batch: readonly PendingOutcome[],
    finals: readonly (string | undefined)[],
  ): void {
    const nowMs = this.clock.now().toMillis();
    batch.forEach(({ message, outcome, started, log }, index) => {
      const fields = {
        errorCode: outcome.errorCode,
        attempts: message.attempts,
        durationMs: nowMs - started.toMillis(),
        ...(outcome.provider === undefined ? {} : { provider: outcome.provider }),
        ...(outcome.failureScope === undefined ? {} : { failureScope: outcome.failureScope }),
      };
      if (outcome.status === 'accepted') log.debug(fields, 'message sent');
      else if (outcome.status === 'decided') log.warn(fields, 'channel send failed, retrying');
      else if (outcome.status === 'unknown')
        log.error(fields, 'message outcome unknown, not resent');
      else log.error(fields, 'channel failed after retries');
      // Failed for good, by the answer or by a receipt that came before it: try the next channel.
      if (finals[index] === 'failed') this.fallBack(message.id, 'failed', log);
    });
  }

  private fallBack(messageId: number, reason: FallbackReason, log: Logger): void {
    try {
      this.onFailed?.(messageId, reason);
    } catch (error) {
      log.error({ err: error, messageId }, 'fallback failed');
    }
  }

  /**
   * Watches for delivery receipts that are overdue (a stage's `receiptTimeout`): each such
   * message is handed to the fallback once, as if the provider had reported it undelivered.
   */
  private armReceiptWatch(): void {
    if (this.isStopped) return;
    if (this.receiptHandle !== undefined) this.clock.clearTimeout(this.receiptHandle);
    this.receiptHandle = undefined;
    const next = this.store.nextReceiptDue();
    if (!next) return;
    const delayMs = DateTime.fromISO(next).toMillis() - this.clock.now().toMillis();
    this.receiptHandle = this.clock.setTimeout(
      () => {
        this.receiptHandle = undefined;
        this.takeOverdueReceipts();
      },
      Math.min(Math.max(0, delayMs), MAX_WATCH_DELAY_MS),
    );
  }

  private takeOverdueReceipts(): void {
    let overdue: number[];
    try {
      overdue = this.store.takeOverdueReceipts(toIsoUtc(this.clock.now()));
    } catch (error) {
      this.log.error({ err: error }, 'overdue receipts could not be taken; retrying');
      this.receiptHandle = this.clock.setTimeout(() => {
        this.receiptHandle = undefined;
        this.takeOverdueReceipts();
      }, DRAIN_RETRY_MS);
      return;
    }
    if (overdue.length > 0)
      this.log.warn({ messages: overdue.length }, 'delivery receipts overdue');
    for (const messageId of overdue) this.fallBack(messageId, 'receipt-overdue', this.log);
    this.armReceiptWatch();
  }

  /**
   * The answer to a send was lost after the request left. Sending again might send twice, so
   * the provider is asked (after a pause, so it can finish what it started) whether it took the
   * message: found, the message is accepted; not found, it is retried as usual. A channel that
   * cannot be asked, or a provider that does not answer, leaves it unknown and reported.
   */
  private async reconcile(
    channel: ChannelAdapter,
    message: OutboxRecord,
    error: ChannelError,
    started: DateTime,
    log: Logger,
  ): Promise<SendOutcome> {
    const unknown: SendOutcome = {
      status: 'unknown',
      errorCode: 'E_CHANNEL_OUTCOME_UNKNOWN',
      errorMessage: error.message,
    };
    const ask = channel.reconcile?.bind(channel);
    if (!ask) return unknown;

    for (let attempt = 1; attempt <= RECONCILE_ATTEMPTS && !this.isStopped; attempt++) {
      await this.sleep(this.reconcileDelayMs * 2 ** (attempt - 1));
      try {
        const found = await this.withTimeout((signal) => ask(message, started.toJSDate(), signal));
        const match = found.find((candidate) => !this.store.hasProviderId(candidate.providerId));
        log.info({ found: match !== undefined, attempt }, 'asked the provider after a lost answer');
        if (match) {
          return {
            status: 'accepted',
            providerId: match.providerId,
            provider: match.provider ?? channel.provider,
            receiptExpected: match.receiptExpected ?? false,
            reconciled: true,
          };
        }
        return this.toFailure(message, error);
      } catch (cause) {
        log.warn(
          {
            errorCode: cause instanceof ChannelError ? cause.code : 'E_CHANNEL_UNAVAILABLE',
            attempt,
          },
          'provider could not be asked about a lost answer',
        );
      }
    }
    return unknown;
  }

  private async withTimeout<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const controller = new AbortController();
    const timeout = this.clock.setTimeout(() => controller.abort(), this.sendTimeoutMs);
    try {
      return await work(controller.signal);
    } finally {
      this.clock.clearTimeout(timeout);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.clock.setTimeout(resolve, ms));
  }

  private toFailure(message: OutboxRecord, error: unknown): SendOutcome {
    const isChannelError = error instanceof ChannelError;
    const errorCode = isChannelError ? (error.providerCode ?? error.code) : 'E_CHANNEL_UNAVAILABLE';
    const errorMessage = error instanceof Error ? error.message : 'send failed';
    const retryable = !isChannelError || error.retryable;
    if (!retryable || message.attempts >= this.maxAttempts) {
      const scope = isChannelError ? error.scope : undefined;
      return {
        status: 'failed',
        errorCode,
        errorMessage,
        ...(scope === undefined ? {} : { failureScope: scope }),
      };
    }
    // Exponential backoff with full jitter, so a provider that throttled is not hit in step.
    const ceiling = this.backoffBaseMs * 2 ** (message.attempts - 1);
    const jittered = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
    // A provider that said how long to wait is not asked again sooner.
    const delay = Math.max(jittered, isChannelError ? (error.retryAfterMs ?? 0) : 0);
    return {
      status: 'decided',
      errorCode,
      errorMessage,
      notBefore: toIsoUtc(this.clock.now().plus({ milliseconds: delay })),
    };
  }

  private armRetry(): void {
    if (this.isStopped) return;
    const next = this.store.nextRetryAt();
    const limitWakeAt = this.limitWakeAt;
    this.limitWakeAt = undefined;
    if (this.retryHandle !== undefined) this.clock.clearTimeout(this.retryHandle);
    this.retryHandle = undefined;
    const at = Math.min(
      next === undefined ? Number.POSITIVE_INFINITY : DateTime.fromISO(next).toMillis(),
      limitWakeAt ?? Number.POSITIVE_INFINITY,
    );
    if (at === Number.POSITIVE_INFINITY) return;
    this.retryLater(at - this.clock.now().toMillis());
  }

  private retryLater(delayMs: number): void {
    if (this.isStopped) return;
    if (this.retryHandle !== undefined) this.clock.clearTimeout(this.retryHandle);
    this.retryHandle = this.clock.setTimeout(
      () => {
        this.retryHandle = undefined;
        this.wake();
      },
      Math.max(0, delayMs),
    );
  }
}

/**
 * The deadline of the sends claimed in one pump: they left at the same moment, so one timer
 * aborts whichever of them still run when it expires, and it is cleared when the last ends.
 */
class SendDeadline {
  private readonly controller = new AbortController();
  private running = 0;
  private handle: unknown;

  constructor(
    private readonly clock: Clock,
    private readonly timeoutMs: number,
  ) {
    // Each send listens for the abort: as many listeners as sends claimed, and no leak.
    setMaxListeners(0, this.controller.signal);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  join(): void {
    this.running++;
    this.handle ??= this.clock.setTimeout(() => this.controller.abort(), this.timeoutMs);
  }

  leave(): void {
    this.running--;
    if (this.running === 0 && this.handle !== undefined) this.clock.clearTimeout(this.handle);
  }
}

/** A send that finished, waiting for its outcome to be stored. */
interface PendingOutcome {
  message: OutboxRecord;
  outcome: SendOutcome;
  started: DateTime;
  log: Logger;
}

/** Creates a dispatcher; call `recoverInFlight` once at start-up, then `wake` when rows are added. */
export function createDispatcher(options: DispatcherOptions): Dispatcher {
  return new Dispatcher(options);
}
