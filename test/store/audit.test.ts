import { describe, expect, it } from 'vitest';

import { IncidentStore } from '../../src/index.js';

const AT = '2026-12-03T09:00:00.000Z';

function storeWithMessages(count: number): IncidentStore {
  const store = new IncidentStore(':memory:');
  const versionId = store.savePlaybookVersion({
    name: 'audit',
    version: 1,
    digest: 'd1',
    file: 'audit.yaml',
    source: 'kind: Playbook',
    loadedAt: AT,
  });
  store.insertIncident({
    id: 'inc_1',
    playbookVersionId: versionId,
    status: 'open',
    dedupeKey: null,
    variables: {},
    snapshot: {},
    createdBy: 'test',
    startedAt: AT,
    updatedAt: AT,
    closedAt: null,
  });
  store.insertMessages(
    Array.from({ length: count }, (_, index) => ({
      incidentId: 'inc_1',
      stageId: 'page',
      occurrence: 1,
      audienceId: 'oncall',
      personId: `person-${index}`,
      channel: 'sms',
      address: `+1202555010${index}`,
      subject: null,
      body: 'secret body',
      status: 'decided' as const,
      errorCode: null,
      errorMessage: null,
      decidedAt: AT,
    })),
  );
  return store;
}

describe('the audit log of the outbox', () => {
  it('records each decision and each outcome, without addresses or texts', () => {
    const store = storeWithMessages(3);
    const [first, second] = store.claimMessages(2, AT, '2026-12-03T09:01:00.000Z');
    store.recordOutcome(first?.id ?? 0, { status: 'accepted', providerId: 'SM1' }, AT);
    store.recordOutcome(second?.id ?? 0, { status: 'failed', errorCode: 'E_CHANNEL_REJECTED' }, AT);
    // Recording twice changes nothing: the row is no longer sending.
    store.recordOutcome(first?.id ?? 0, { status: 'failed' }, AT);

    const events = store.listAudit('inc_1');
    expect(events.filter((event) => event.type === 'message.decided')).toHaveLength(3);
    expect(
      events
        .filter((event) => event.type === 'message.outcome')
        .map((event) => [event.data.messageId, event.data.status, event.data.attempt]),
    ).toEqual([
      [first?.id, 'accepted', 1],
      [second?.id, 'failed', 1],
    ]);
    expect(JSON.stringify(events)).not.toMatch(/\+1202555|secret body/);
    store.close();
  });

  it('stores the entries of messages written together as one row, read back one per message', () => {
    const store = storeWithMessages(3);
    const claimed = store.claimMessages(3, AT, '2026-12-03T09:01:00.000Z');
    store.recordOutcomes(
      claimed.map((message) => ({
        id: message.id,
        outcome: { status: 'accepted' as const, providerId: `SM${message.id}` },
      })),
      AT,
    );
    const rows = store.db.prepare('SELECT type FROM audit ORDER BY seq').all() as {
      type: string;
    }[];

    expect(rows.map((row) => row.type)).toEqual(['messages.decided', 'messages.outcome']);
    const events = store.listAudit('inc_1');
    expect(events.map((event) => [event.type, event.data.messageId])).toEqual([
      ...claimed.map((message) => ['message.decided', message.id]),
      ...claimed.map((message) => ['message.outcome', message.id]),
    ]);
    expect(new Set(events.slice(0, 3).map((event) => event.seq)).size).toBe(1);
    store.close();
  });

  it('logs a receipt that came before the send was answered after the answer', () => {
    const store = storeWithMessages(2);
    const [first, second] = store.claimMessages(2, AT, '2026-12-03T09:01:00.000Z');
    store.recordReceipt({
      provider: 'twilio',
      providerId: 'SM-early',
      status: 'delivered',
      providerStatus: 'delivered',
      at: AT,
    });

    store.recordOutcomes(
      [
        { id: first?.id ?? 0, outcome: { status: 'accepted', providerId: 'SM-early' } },
        { id: second?.id ?? 0, outcome: { status: 'accepted', providerId: 'SM-late' } },
      ],
      AT,
    );

    const events = store.listAudit('inc_1').filter((event) => event.type !== 'message.decided');
    expect(events.map((event) => [event.type, event.data.messageId])).toEqual([
      ['message.outcome', first?.id],
      ['message.receipt', first?.id],
      ['message.outcome', second?.id],
    ]);
    expect(store.getMessage(first?.id ?? 0)?.status).toBe('delivered');
    store.close();
  });

  it('records messages found in flight after a crash as unknown', () => {
    const store = storeWithMessages(2);
    store.claimMessages(2, AT, '2026-12-03T09:01:00.000Z');

    const unknown = store.markInFlightUnknown('2026-12-03T09:05:00.000Z');

    const outcomes = store.listAudit('inc_1').filter((event) => event.type === 'message.outcome');
    expect(outcomes.map((event) => [event.data.messageId, event.data.status])).toEqual(
      unknown.map((message) => [message.id, 'unknown']),
    );
    store.close();
  });

  it('opens read-only without writing, and refuses a file that does not exist', () => {
    expect(() => new IncidentStore('/nonexistent/tocsin.db', { readonly: true })).toThrow(
      /cannot be opened for reading/,
    );
  });
});
