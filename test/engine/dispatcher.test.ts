import { DateTime } from 'luxon';
import { beforeEach, describe, expect, it } from 'vitest';

import { ChannelError, createDispatcher, IncidentStore, ManualClock } from '../../src/index.js';
import type { ChannelAdapter, OutgoingMessage } from '../../src/index.js';

const START = DateTime.fromISO('2026-12-03T09:00:00Z');

/** A channel that keeps what it was asked to send and answers from a script. */
function recordingChannel(
  answers: ('ok' | 'retry' | 'reject' | 'throttle')[] = [],
): ChannelAdapter & { sent: OutgoingMessage[] } {
  const sent: OutgoingMessage[] = [];
  return {
    kind: 'sms',
    provider: 'recording',
    sent,
    send: (message) => {
      sent.push(message);
      const answer = answers.shift() ?? 'ok';
      if (answer === 'retry') {
        return Promise.reject(
          new ChannelError('E_CHANNEL_UNAVAILABLE', 'busy', {
            retryable: true,
            providerCode: '20429',
            status: 429,
          }),
        );
      }
      if (answer === 'throttle') {
        return Promise.reject(
          new ChannelError('E_CHANNEL_UNAVAILABLE', 'slow down', {
            retryable: true,
            providerCode: '20429',
            status: 429,
            retryAfterMs: 30_000,
          }),
        );
      }
      if (answer === 'reject') {
        return Promise.reject(
          new ChannelError('E_CHANNEL_REJECTED', 'bad number', {
            retryable: false,
            providerCode: '21211',
            status: 400,
          }),
        );
      }
      return Promise.resolve({ providerId: `SM${sent.length}` });
    },
    close: () => Promise.resolve(),
  };
}

describe('dispatcher', () => {
  let store: IncidentStore;
  let clock: ManualClock;

  beforeEach(() => {
    store = new IncidentStore(':memory:');
    clock = new ManualClock(START);
    const versionId = store.savePlaybookVersion({
      name: 'p',
      version: 1,
      digest: 'd',
      file: 'p.yaml',
      source: '',
      loadedAt: START.toISO() ?? '',
    });
    store.insertIncident({
      id: 'inc_1',
      playbookVersionId: versionId,
      status: 'open',
      dedupeKey: null,
      variables: {},
      snapshot: {},
      createdBy: 'test',
      startedAt: START.toISO() ?? '',
      updatedAt: START.toISO() ?? '',
      closedAt: null,
    });
    store.insertMessages(
      ['a', 'b', 'c'].map((personId) => ({
        incidentId: 'inc_1',
        stageId: 's',
        occurrence: 1,
        audienceId: 'x',
        personId,
        channel: 'sms',
        address: '+12025550101',
        subject: null,
        body: `hello ${personId}`,
        status: 'decided' as const,
        errorCode: null,
        errorMessage: null,
        decidedAt: START.toISO() ?? '',
      })),
    );
  });

  it('sends every decided message once and records the provider id', async () => {
    const channel = recordingChannel();
    const dispatcher = createDispatcher({ store, clock, channels: new Map([['sms', channel]]) });

    dispatcher.wake();
    await dispatcher.idle();

    expect(channel.sent.map((m) => m.body)).toEqual(['hello a', 'hello b', 'hello c']);
    expect(store.listMessages('inc_1').map((m) => [m.status, m.providerId])).toEqual([
      ['accepted', 'SM1'],
      ['accepted', 'SM2'],
      ['accepted', 'SM3'],
    ]);
  });

  it('retries a retryable failure after a backoff and records a permanent one with its code', async () => {
    const channel = recordingChannel(['retry', 'reject', 'ok', 'ok']);
    const dispatcher = createDispatcher({
      store,
      clock,
      channels: new Map([['sms', channel]]),
      concurrency: 1,
    });

    dispatcher.wake();
    await dispatcher.idle();
    const afterFirstPass = store.listMessages('inc_1').map((m) => m.status);
    clock.advanceBy(2_000);
    await dispatcher.idle();

    expect(afterFirstPass).toEqual(['decided', 'failed', 'accepted']);
    const messages = store.listMessages('inc_1');
    expect(messages.map((m) => [m.status, m.attempts, m.errorCode])).toEqual([
      ['accepted', 2, null],
      ['failed', 1, '21211'],
      ['accepted', 1, null],
    ]);
  });

  it('waits as long as the provider asked in Retry-After before trying again', async () => {
    const channel = recordingChannel(['throttle']);
    const dispatcher = createDispatcher({
      store,
      clock,
      channels: new Map([['sms', channel]]),
      concurrency: 1,
    });

    dispatcher.wake();
    await dispatcher.idle();
    clock.advanceBy(29_000);
    await dispatcher.idle();
    const beforeItIsTime = channel.sent.length;
    clock.advanceBy(1_000);
    await dispatcher.idle();

    expect(beforeItIsTime).toBe(3);
    expect(channel.sent.map((m) => m.body)).toEqual(['hello a', 'hello b', 'hello c', 'hello a']);
  });

  it('looks again after a failed claim instead of waiting for the next message', async () => {
    const channel = recordingChannel();
    const dispatcher = createDispatcher({ store, clock, channels: new Map([['sms', channel]]) });
    // The lease lapses for a moment (the process was paused): claims fail until it is renewed.
    let leaseNow = START.plus({ minutes: 5 }).toISO() ?? '';
    store.acquireLease('me', START.toISO() ?? '', 15_000);
    store.holdLease('me', () => leaseNow);

    dispatcher.wake();
    await dispatcher.idle();
    expect(channel.sent).toEqual([]);
    leaseNow = START.plus({ seconds: 1 }).toISO() ?? '';
    clock.advanceBy(1_000);
    await dispatcher.idle();

    expect(channel.sent.map((m) => m.body)).toEqual(['hello a', 'hello b', 'hello c']);
  });

  it('sends no faster than the rate of the provider account', async () => {
    const channel = recordingChannel();
    const dispatcher = createDispatcher({
      store,
      clock,
      channels: new Map([['sms', channel]]),
      limits: { sms: { perSecond: 1 } },
    });

    dispatcher.wake();
    await dispatcher.idle();
    const atStart = channel.sent.length;
    clock.advanceBy(999);
    await dispatcher.idle();
    const justBefore = channel.sent.length;
    clock.advanceBy(1);
    await dispatcher.idle();
    const afterOneSecond = channel.sent.length;
    clock.advanceBy(1_000);
    await dispatcher.idle();

    expect([atStart, justBefore, afterOneSecond, channel.sent.length]).toEqual([1, 1, 2, 3]);
    expect(store.listMessages('inc_1').map((m) => [m.status, m.attempts])).toEqual([
      ['accepted', 1],
      ['accepted', 1],
      ['accepted', 1],
    ]);
  });

  it('holds a message to the same person until the gap since the last one has passed', async () => {
    const channel = recordingChannel();
    const dispatcher = createDispatcher({
      store,
      clock,
      channels: new Map([['sms', channel]]),
      limits: { sms: { recipientGapMs: 10_000 } },
    });

    dispatcher.wake();
    await dispatcher.idle();
    const first = channel.sent.map((m) => m.body);
    const held = store.listMessages('inc_1').map((m) => [m.status, m.notBefore ?? null]);
    clock.advanceBy(10_000);
    await dispatcher.idle();
    clock.advanceBy(10_000);
    await dispatcher.idle();

    expect(first).toEqual(['hello a']);
    expect(held).toEqual([
      ['accepted', null],
      ['decided', '2026-12-03T09:00:10.000Z'],
      ['decided', '2026-12-03T09:00:10.000Z'],
    ]);
    expect(channel.sent.map((m) => m.body)).toEqual(['hello a', 'hello b', 'hello c']);
    // Holding back is not a failed attempt.
    expect(store.listMessages('inc_1').map((m) => m.attempts)).toEqual([1, 1, 1]);
  });

  it('marks messages left in flight by a killed process unknown and never sends them again', async () => {
    store.claimMessages(2, START.toISO() ?? '', START.plus({ minutes: 1 }).toISO() ?? '');
    const channel = recordingChannel();
    const dispatcher = createDispatcher({ store, clock, channels: new Map([['sms', channel]]) });

    const unknown = dispatcher.recoverInFlight();
    dispatcher.wake();
    await dispatcher.idle();

    expect(unknown).toBe(2);
    expect(channel.sent.map((m) => m.body)).toEqual(['hello c']);
    expect(store.listMessages('inc_1').map((m) => m.status)).toEqual([
      'unknown',
      'unknown',
      'accepted',
    ]);
  });

  it('asks the provider about messages left in flight, where it can: found is accepted, not found is sent again', async () => {
    store.claimMessages(2, START.toISO() ?? '', START.plus({ minutes: 1 }).toISO() ?? '');
    const channel = recordingChannel();
    const asked: string[] = [];
    const reconciling: ChannelAdapter = {
      ...channel,
      // The provider took "hello a" before the crash, never "hello b".
      reconcile: (message) => {
        asked.push(message.body);
        return Promise.resolve(
          message.body === 'hello a' ? [{ providerId: 'SMfound', receiptExpected: false }] : [],
        );
      },
    };
    const dispatcher = createDispatcher({
      store,
      clock,
      channels: new Map([['sms', reconciling]]),
      reconcileDelayMs: 1_000,
      backoffBaseMs: 1_000,
    });

    const settle = async (): Promise<void> => {
      for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve));
    };

    const unknown = dispatcher.recoverInFlight();
    dispatcher.wake();
    await settle();
    // The provider is asked after the reconcile pause; the one it lacks waits for its retry.
    clock.advanceBy(1_000);
    await settle();
    clock.advanceBy(2_000);
    await dispatcher.idle();

    expect(unknown).toBe(0);
    expect(asked).toEqual(['hello a', 'hello b']);
    expect(channel.sent.map((m) => m.body).sort()).toEqual(['hello b', 'hello c']);
    expect(store.listMessages('inc_1').map((m) => [m.status, m.providerId !== null])).toEqual([
      ['accepted', true],
      ['accepted', true],
      ['accepted', true],
    ]);
    expect(store.listMessages('inc_1')[0]?.providerId).toBe('SMfound');
  });

  it('fails messages for a channel that is not configured', async () => {
    const dispatcher = createDispatcher({ store, clock, channels: new Map() });

    dispatcher.wake();
    await dispatcher.idle();

    expect(store.listMessages('inc_1').map((m) => m.errorCode)).toEqual(
      Array(3).fill('E_CHANNEL_NOT_CONFIGURED'),
    );
  });
});
