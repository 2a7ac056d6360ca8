import Database from 'better-sqlite3';
import type { Database as SqliteDatabase, RunResult, Statement } from 'better-sqlite3';

import { StoreError } from '../errors.js';
import { MIGRATIONS } from './migrations.js';
import type {
  AuditEntry,
  AuditRecord,
  DeliveryReceipt,
  ExpansionRecord,
  MessageStatus,
  IncidentRecord,
  IncidentStatus,
  LeaseRecord,
  NewOutboxMessage,
  OutboxRecord,
  PlaybookVersionRecord,
  SendOutcome,
  TimerRecord,
} from './types.js';

type Row = Record<string, string | number | null>;

/** Per-message audit entries, stored several to a row under the type `messages.…`. */
type BatchedType = 'message.decided' | 'message.outcome';
const stored = (type: BatchedType): string => type.replace(/^message\./, 'messages.');
const BATCHED_TYPES = new Map<string, BatchedType>(
  (['message.decided', 'message.outcome'] as const).map((type) => [stored(type), type]),
);

interface AuditBatch {
  add(incidentId: string, at: string, data: object): void;
  /** Writes what was added, one row per incident and instant. */
  flush(): void;
}

/**
 * Tocsin's state in one SQLite file: playbook versions, incidents with their snapshots, due
 * timers, the outbox, acknowledgements and the append-only audit log. Every method is
 * synchronous; `transaction` groups several into one atomic write.
 */
export class IncidentStore {
  readonly db: SqliteDatabase;
  private readonly statements = new Map<string, Statement>();
  /** Set by `holdLease`: every transaction first checks that this process still holds it. */
  private fence: { holder: string; now: () => string } | undefined;

  /**
   * Opens (and migrates) the database at `file`; `:memory:` gives a private in-memory one. With
   * `readonly`, the file must exist and be of this Tocsin's schema version, and nothing is
   * written to it.
   *
   * @throws StoreError E_STORE when the file cannot be opened, E_STORE_MIGRATION when a newer
   *   Tocsin wrote it (or, read-only, an older one)
   */
  constructor(file: string, options: { readonly?: boolean } = {}) {
    const readonly = options.readonly ?? false;
    try {
      this.db = new Database(file, { readonly, fileMustExist: readonly });
      if (!readonly) {
        this.db.pragma('journal_mode = WAL');
        this.db.pragma('synchronous = NORMAL');
        // Folds the log back into the database every 8,000 pages (about 32 MB) instead of 1,000:
        // a page written many times in between is copied (and synced) once. Measured on the
        // fan-out: 5-10% less time in SQLite.
        this.db.pragma('wal_autocheckpoint = 8000');
      }
      this.db.pragma('foreign_keys = ON');
      this.db.pragma('busy_timeout = 5000');
    } catch (cause) {
      throw new StoreError(
        'E_STORE',
        `database "${file}" cannot be opened${readonly ? ' for reading' : ''}; check the path and its permissions`,
        { cause },
      );
    }
    try {
      if (readonly) this.checkVersion(file);
      else this.migrate(file);
    } catch (cause) {
      if (cause instanceof StoreError) throw cause;
      this.db.close();
      throw new StoreError(
        'E_STORE',
        `"${file}" is not a Tocsin database (SQLite cannot read it); give the file tocsin serve uses`,
        { cause },
      );
    }
  }

  close(): void {
    this.db.close();
  }

  /**
   * Runs `work` in one transaction: all of its writes land, or none. Once this process holds the
   * writer lease, a transaction begun after the lease passed to another process fails instead.
   *
   * @throws StoreError E_STORE_LEASE_LOST
   */
  transaction<T>(work: () => T): T {
    return this.db
      .transaction(() => {
        this.checkFence();
        return work();
      })
      .immediate();
  }

  // Replies and opt-outs

  /** Reply codes of open incidents, so a new one can be told apart. */
  openReplyCodes(): Set<string> {
    return new Set(
      this.all(
        `SELECT reply_code FROM incidents WHERE status = 'open' AND reply_code IS NOT NULL`,
      ).map((row) => String(row.reply_code)),
    );
  }

  /** The open incident a reply names by its code. */
  findOpenIncidentByCode(code: string): string | undefined {
    const row = this.get(
      `SELECT id FROM incidents WHERE status = 'open' AND reply_code = ? ORDER BY started_at DESC LIMIT 1`,
      code,
    );
    return row ? String(row.id) : undefined;
  }

  /** The open incident that last sent `personId` a message on `channel`: what a bare reply answers. */
  /** Whether the incident has told this person anything, on any channel. */
  hasMessaged(incidentId: string, personId: string): boolean {
    return (
      this.get(
        'SELECT 1 AS one FROM outbox WHERE incident_id = ? AND person_id = ? LIMIT 1',
        incidentId,
        personId,
      ) !== undefined
    );
  }

  lastOpenIncidentMessaging(personId: string, channel: string): string | undefined {
    const row = this.get(
      `SELECT o.incident_id AS id FROM outbox o JOIN incidents i ON i.id = o.incident_id
       WHERE o.person_id = ? AND o.channel = ? AND i.status = 'open'
       ORDER BY o.id DESC LIMIT 1`,
      personId,
      channel,
    );
    return row ? String(row.id) : undefined;
  }

  /** Records that a person opted out of a channel (STOP), or back in (START). */
  setOptOut(change: {
    personId: string;
    channel: string;
    optedOut: boolean;
    at: string;
    via: string;
  }): void {
    this.transaction(() => {
      if (change.optedOut) {
        this.run(
          `INSERT INTO opt_outs (person_id, channel, at, via) VALUES (?, ?, ?, ?)
           ON CONFLICT (person_id, channel) DO UPDATE SET at = excluded.at, via = excluded.via`,
          change.personId,
          change.channel,
          change.at,
          change.via,
        );
      } else {
        this.run(
          `DELETE FROM opt_outs WHERE person_id = ? AND channel = ?`,
          change.personId,
          change.channel,
        );
      }
      this.appendAudit({
        incidentId: null,
        at: change.at,
        actor: change.personId,
        type: change.optedOut ? 'recipient.opted-out' : 'recipient.opted-in',
        data: { personId: change.personId, channel: change.channel, via: change.via },
      });
    });
  }

  /** Every opt-out, as `person\u0000channel` keys. */
  listOptOuts(): Set<string> {
    return new Set(
      this.all('SELECT person_id, channel FROM opt_outs').map(
        (row) => `${String(row.person_id)}\u0000${String(row.channel)}`,
      ),
    );
  }

  /** Notes that `address` wrote to us on `channel` at `at` (opening WhatsApp's window). */
  touchReplyWindow(channel: string, address: string, at: string): void {
    this.run(
      `INSERT INTO reply_windows (channel, address, last_inbound_at) VALUES (?, ?, ?)
       ON CONFLICT (channel, address) DO UPDATE SET last_inbound_at = max(last_inbound_at, excluded.last_inbound_at)`,
      channel,
      address,
      at,
    );
  }

  /** When `address` last wrote to us on `channel`, if ever. */
  lastInboundAt(channel: string, address: string): string | undefined {
    const row = this.get(
      'SELECT last_inbound_at FROM reply_windows WHERE channel = ? AND address = ?',
      channel,
      address,
    );
    return row ? String(row.last_inbound_at) : undefined;
  }

  // Writer lease

  /**
   * Takes the writer lease for `ttlMs` if nobody holds it, it ran out, `holder` has it already,
   * or `isGone` says its holder is known to be dead (a crashed process on this machine).
   * Returns who holds it afterwards.
   */
  acquireLease(
    holder: string,
    now: string,
    ttlMs: number,
    isGone: (holder: string) => boolean = () => false,
  ): LeaseRecord {
    return this.db
      .transaction(() => {
        const current = this.readLease();
        const taken = current && current.holder !== holder && current.expiresAt > now;
        if (current && taken && !isGone(current.holder)) return current;
        const lease: LeaseRecord = {
          holder,
          acquiredAt: current?.holder === holder ? current.acquiredAt : now,
          expiresAt: plusMs(now, ttlMs),
        };
        this.run(
          `INSERT INTO lease (name, holder, acquired_at, expires_at)
           VALUES ('writer', @holder, @acquiredAt, @expiresAt)
           ON CONFLICT (name) DO UPDATE SET holder = @holder, acquired_at = @acquiredAt,
             expires_at = @expiresAt`,
          lease,
        );
        return lease;
      })
      .immediate();
  }

  /** Extends the lease `holder` has; false when another process has taken it. */
  renewLease(holder: string, now: string, ttlMs: number): boolean {
    const changed = this.run(
      `UPDATE lease SET expires_at = ? WHERE name = 'writer' AND holder = ?`,
      plusMs(now, ttlMs),
      holder,
    ).changes;
    return changed === 1;
  }

  /** Gives the lease up, so a standby takes over at once instead of after the lease runs out. */
  releaseLease(holder: string): void {
    this.run(`DELETE FROM lease WHERE name = 'writer' AND holder = ?`, holder);
  }

  /** From now on, every transaction checks that `holder` still holds the lease at `now()`. */
  holdLease(holder: string, now: () => string): void {
    this.fence = { holder, now };
  }

  readLease(): LeaseRecord | undefined {
    const row = this.get(`SELECT holder, acquired_at, expires_at FROM lease WHERE name = 'writer'`);
    if (!row) return undefined;
    return {
      holder: String(row.holder),
      acquiredAt: String(row.acquired_at),
      expiresAt: String(row.expires_at),
    };
  }

  private checkFence(): void {
    if (!this.fence) return;
    const lease = this.readLease();
    if (lease?.holder === this.fence.holder && lease.expiresAt > this.fence.now()) return;
    throw new StoreError(
      'E_STORE_LEASE_LOST',
      lease && lease.holder !== this.fence.holder
        ? `another process (${lease.holder}) holds the writer lease now; this one must stop writing`
        : 'the writer lease ran out before this process renewed it; this one must stop writing',
    );
  }

  // Playbook versions

  /** Stores a playbook's text once per (name, digest) and returns its row id. */
  savePlaybookVersion(version: Omit<PlaybookVersionRecord, 'id'>): number {
    this.run(
      `INSERT INTO playbook_versions (name, version, digest, file, source, loaded_at)
       VALUES (@name, @version, @digest, @file, @source, @loadedAt)
       ON CONFLICT (name, digest) DO NOTHING`,
      version,
    );
    const row = this.get(
      'SELECT id FROM playbook_versions WHERE name = ? AND digest = ?',
      version.name,
      version.digest,
    );
    return Number(row?.id);
  }

  getPlaybookVersion(id: number): PlaybookVersionRecord | undefined {
    const row = this.get('SELECT * FROM playbook_versions WHERE id = ?', id);
    return (
      row && {
        id: Number(row.id),
        name: String(row.name),
        version: Number(row.version),
        digest: String(row.digest),
        file: String(row.file),
        source: String(row.source),
        loadedAt: String(row.loaded_at),
      }
    );
  }

  // Incidents

  insertIncident(incident: IncidentRecord): void {
    this.run(
      `INSERT INTO incidents (id, playbook_version_id, status, dedupe_key, variables, snapshot,
         created_by, started_at, updated_at, closed_at, reply_code)
       VALUES (@id, @playbookVersionId, @status, @dedupeKey, @variables, @snapshot,
         @createdBy, @startedAt, @updatedAt, @closedAt, @replyCode)`,
      {
        ...incident,
        replyCode: incident.replyCode ?? null,
        variables: JSON.stringify(incident.variables),
        snapshot: JSON.stringify(incident.snapshot),
      },
    );
  }

  updateIncident(
    id: string,
    update: { status: IncidentStatus; snapshot: unknown; updatedAt: string },
  ): void {
    const closedAt = update.status === 'open' ? null : update.updatedAt;
    this.run(
      `UPDATE incidents SET status = @status, snapshot = @snapshot, updated_at = @updatedAt,
         closed_at = COALESCE(closed_at, @closedAt)
       WHERE id = @id`,
      {
        id,
        status: update.status,
        snapshot: JSON.stringify(update.snapshot),
        updatedAt: update.updatedAt,
        closedAt,
      },
    );
  }

  getIncident(id: string): IncidentRecord | undefined {
    const row = this.get('SELECT * FROM incidents WHERE id = ?', id);
    return row && toIncident(row);
  }

  findOpenIncident(dedupeKey: string): IncidentRecord | undefined {
    const row = this.get(
      `SELECT * FROM incidents WHERE dedupe_key = ? AND status = 'open'`,
      dedupeKey,
    );
    return row && toIncident(row);
  }

  listIncidents(options: { status?: IncidentStatus; limit?: number } = {}): IncidentRecord[] {
    const rows = options.status
      ? this.all(
          'SELECT * FROM incidents WHERE status = ? ORDER BY started_at DESC, id DESC LIMIT ?',
          options.status,
          options.limit ?? -1,
        )
      : this.all(
          'SELECT * FROM incidents ORDER BY started_at DESC, id DESC LIMIT ?',
          options.limit ?? -1,
        );
    return rows.map(toIncident);
  }

  // Timers

  /** Makes the stored timers of an incident exactly `timers`. */
  replaceTimers(incidentId: string, timers: readonly TimerRecord[]): void {
    this.run('DELETE FROM timers WHERE incident_id = ?', incidentId);
    for (const timer of timers) {
      this.run(
        'INSERT INTO timers (incident_id, timer_id, due_at) VALUES (@incidentId, @timerId, @dueAt)',
        timer,
      );
    }
  }

  /** Timers due at or before `now`, earliest first. */
  listDueTimers(now: string): TimerRecord[] {
    return this.all(
      'SELECT * FROM timers WHERE due_at <= ? ORDER BY due_at, incident_id, timer_id',
      now,
    ).map(toTimer);
  }

  nextTimer(): TimerRecord | undefined {
    const row = this.get('SELECT * FROM timers ORDER BY due_at, incident_id, timer_id LIMIT 1');
    return row && toTimer(row);
  }

  listTimers(incidentId: string): TimerRecord[] {
    return this.all('SELECT * FROM timers WHERE incident_id = ? ORDER BY due_at', incidentId).map(
      toTimer,
    );
  }

  // Outbox

  /** Adds decided messages to the outbox, each with its `message.decided` audit entry. */
  insertMessages(
    messages: readonly NewOutboxMessage[],
    options: { ignoreDuplicates?: boolean } = {},
  ): number {
    let inserted = 0;
    const verb = options.ignoreDuplicates ? 'INSERT OR IGNORE' : 'INSERT';
    const audit = this.auditBatch('engine', 'message.decided');
    for (const message of messages) {
      // Positional parameters: binding by name looks each one up on the object, for every row.
      const { lastInsertRowid, changes } = this.run(
        `${verb} INTO outbox (incident_id, stage_id, occurrence, audience_id, person_id, channel, address,
           subject, body, status, error_code, error_message, decided_at, not_before, updated_at,
           sms_encoding, sms_segments, receipt_timeout_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        message.incidentId,
        message.stageId,
        message.occurrence,
        message.audienceId,
        message.personId,
        message.channel,
        message.address,
        message.subject,
        message.body,
        message.status,
        message.errorCode,
        message.errorMessage,
        message.decidedAt,
        message.notBefore ?? null,
        message.decidedAt,
        message.smsEncoding ?? null,
        message.smsSegments ?? null,
        message.receiptTimeoutMs ?? null,
      );
      // Already decided (a person in two audiences, met again in a later part of an expansion).
      if (changes === 0) continue;
      inserted++;
      // Ids and outcome only: the address and the text stay in the outbox row.
      audit.add(message.incidentId, message.decidedAt, {
        messageId: Number(lastInsertRowid),
        stageId: message.stageId,
        occurrence: message.occurrence,
        audienceId: message.audienceId,
        personId: message.personId,
        channel: message.channel,
        status: message.status,
        errorCode: message.errorCode,
        notBefore: message.notBefore ?? null,
      });
    }
    audit.flush();
    return inserted;
  }

  /**
   * Moves up to `limit` decided messages to sending, with a deadline, and returns them. Only
   * claimed rows are sent, so two dispatchers never send the same row. Rows of the `skipping`
   * channels (those at their rate limit) stay where they are.
   */
  claimMessages(
    limit: number,
    now: string,
    deadline: string,
    skipping: readonly string[] = [],
  ): OutboxRecord[] {
    return this.transaction(() => this.claimRows(limit, now, deadline, skipping));
  }

  /**
   * Stores the outcomes of finished sends and claims the next rows, in one transaction: the
   * dispatcher's one write per turn of the event loop. The claim is fenced by the writer lease;
   * when it fails, the outcomes are stored alone and the claim's error is returned.
   */
  settleAndClaim(
    outcomes: readonly { id: number; outcome: SendOutcome }[],
    claim: { limit: number; now: string; deadline: string; skipping?: readonly string[] },
    now: string,
  ): { finals: (MessageStatus | undefined)[]; claimed: OutboxRecord[]; claimError?: unknown } {
    try {
      return this.db
        .transaction(() => {
          const finals = this.applyOutcomes(outcomes, now);
          this.checkFence();
          const claimed = this.claimRows(
            claim.limit,
            claim.now,
            claim.deadline,
            claim.skipping ?? [],
          );
          return { finals, claimed };
        })
        .immediate();
    } catch (claimError) {
      const finals = outcomes.length > 0 ? this.recordOutcomes(outcomes, now) : [];
      return { finals, claimed: [], claimError };
    }
  }

  private claimRows(
    limit: number,
    now: string,
    deadline: string,
    skipping: readonly string[],
  ): OutboxRecord[] {
    const skip =
      skipping.length === 0 ? '' : `AND channel NOT IN (${skipping.map(() => '?').join(', ')})`;
    const rows = this.all(
      `SELECT * FROM outbox WHERE status = 'decided' AND (not_before IS NULL OR not_before <= ?)
       ${skip} ORDER BY id LIMIT ?`,
      now,
      ...skipping,
      limit,
    );
    for (const row of rows) {
      this.run(
        `UPDATE outbox SET status = 'sending', attempts = attempts + 1, send_deadline = ?, updated_at = ?
         WHERE id = ?`,
        deadline,
        now,
        row.id,
      );
    }
    return rows.map((row) =>
      toMessage({
        ...row,
        status: 'sending',
        attempts: Number(row.attempts) + 1,
        send_deadline: deadline,
      }),
    );
  }

  /** Records the outcomes of several sends in one transaction; returns each row's status. */
  recordOutcomes(
    outcomes: readonly { id: number; outcome: SendOutcome }[],
    now: string,
  ): (MessageStatus | undefined)[] {
    return this.db.transaction(() => this.applyOutcomes(outcomes, now))();
  }

  /**
   * Records what the provider answered for a message that was sending, with its
   * `message.outcome` audit entry, in one transaction. Receipts that arrived before this answer
   * are applied now. Returns where the message ended, or undefined when it was not sending.
   */
  recordOutcome(id: number, outcome: SendOutcome, now: string): MessageStatus | undefined {
    return this.db.transaction(() => this.applyOutcomes([{ id, outcome }], now)[0])();
  }

  private applyOutcomes(
    outcomes: readonly { id: number; outcome: SendOutcome }[],
    now: string,
  ): (MessageStatus | undefined)[] {
    const audit = this.auditBatch('dispatcher', 'message.outcome');
    const finals = outcomes.map(({ id, outcome }) => this.applyOutcome(id, outcome, now, audit));
    audit.flush();
    return finals;
  }

  // Not fenced: what a provider answered stays true after the lease is lost, and it only
  // changes a row this process claimed (still sending).
  private applyOutcome(
    id: number,
    outcome: SendOutcome,
    now: string,
    audit: AuditBatch,
  ): MessageStatus | undefined {
    {
      const row = this.get(
        `UPDATE outbox SET status = ?, provider_id = ?, error_code = ?, error_message = ?,
           send_deadline = NULL, not_before = ?, updated_at = ?,
           receipt_due_at = CASE WHEN ? = 1
             THEN strftime('%Y-%m-%dT%H:%M:%fZ', ?, '+' || (receipt_timeout_ms / 1000.0) || ' seconds') END
         WHERE id = ? AND status = 'sending'
         RETURNING incident_id, attempts`,
        outcome.status,
        outcome.providerId ?? null,
        outcome.errorCode ?? null,
        outcome.errorMessage ?? null,
        outcome.notBefore ?? null,
        now,
        outcome.status === 'accepted' && outcome.receiptExpected ? 1 : 0,
        now,
        id,
      );
      if (!row) return undefined;
      audit.add(String(row.incident_id), now, {
        messageId: id,
        status: outcome.status,
        attempt: Number(row.attempts),
        providerId: outcome.providerId ?? null,
        ...(outcome.provider === undefined ? {} : { provider: outcome.provider }),
        errorCode: outcome.errorCode ?? null,
        ...(outcome.failureScope === undefined ? {} : { failureScope: outcome.failureScope }),
        retryAt: outcome.status === 'decided' ? (outcome.notBefore ?? null) : null,
        ...(outcome.reconciled ? { reconciled: true } : {}),
      });
      if (outcome.status !== 'accepted' || outcome.providerId === undefined) return outcome.status;

      // A provider may call back before its answer to the send arrives (or instead of it, when
      // the answer was lost and the message found later): the receipts held for it apply now.
      const held = this.all(
        'SELECT rowid, * FROM early_receipts WHERE provider_id = ? ORDER BY rowid',
        outcome.providerId,
      );
      // The outcome is written before the receipts it lets through, so the log keeps their order.
      if (held.length > 0) audit.flush();
      for (const receipt of held) {
        this.applyReceipt({
          provider: String(receipt.provider),
          providerId: String(receipt.provider_id),
          status: receipt.status as DeliveryReceipt['status'],
          providerStatus: String(receipt.provider_status),
          ...(receipt.error_code === null ? {} : { errorCode: String(receipt.error_code) }),
          at: String(receipt.at),
        });
      }
      if (held.length > 0)
        this.run('DELETE FROM early_receipts WHERE provider_id = ?', outcome.providerId);
      return String(
        this.get('SELECT status FROM outbox WHERE id = ?', id)?.status,
      ) as MessageStatus;
    }
  }

  /**
   * Applies a delivery receipt to the message with that provider id, forward only: accepted
   * becomes delivered, read or failed; delivered becomes read. A late or repeated receipt
   * changes nothing. A receipt for a provider id no message holds yet is kept until a send's
   * answer names it. Returns the message id when the receipt moved a message.
   */
  recordReceipt(receipt: DeliveryReceipt): number | undefined {
    return this.transaction(() => {
      const moved = this.applyReceipt(receipt);
      if (moved !== undefined) return moved;
      const known = this.get(
        'SELECT 1 AS one FROM outbox WHERE provider_id = ?',
        receipt.providerId,
      );
      if (!known) {
        this.run(
          `INSERT INTO early_receipts (provider, provider_id, status, provider_status, error_code, at)
           VALUES (@provider, @providerId, @status, @providerStatus, @errorCode, @at)`,
          { ...receipt, errorCode: receipt.errorCode ?? null },
        );
      }
      return undefined;
    });
  }

  private applyReceipt(receipt: DeliveryReceipt): number | undefined {
    const from = receipt.status === 'read' ? ['accepted', 'delivered'] : ['accepted'];
    const row = this.get(
      `UPDATE outbox SET status = @status, error_code = coalesce(@errorCode, error_code), updated_at = @at,
         error_message = CASE WHEN @status = 'failed' THEN @failure ELSE error_message END,
         receipt_due_at = NULL
       WHERE provider_id = @providerId AND status IN (@from1, @from2)
       RETURNING id, incident_id`,
      {
        status: receipt.status,
        failure: `the provider reported it ${receipt.providerStatus}${receipt.errorCode === undefined ? '' : ` (${receipt.errorCode})`}`,
        errorCode: receipt.errorCode ?? null,
        at: receipt.at,
        providerId: receipt.providerId,
        from1: from[0],
        from2: from[1] ?? from[0],
      },
    );
    if (!row) return undefined;
    this.appendAudit({
      incidentId: String(row.incident_id),
      at: receipt.at,
      actor: receipt.provider,
      type: 'message.receipt',
      data: {
        messageId: Number(row.id),
        status: receipt.status,
        providerStatus: receipt.providerStatus,
        errorCode: receipt.errorCode ?? null,
      },
    });
    return Number(row.id);
  }

  /**
   * Marks every message left sending by a previous process as unknown, except those `keep`
   * takes (the caller asks the provider about them): it may or may not have reached the
   * provider, so it is reported rather than sent again. Returns the rows marked.
   */
  markInFlightUnknown(
    now: string,
    keep: (message: OutboxRecord) => boolean = () => false,
  ): OutboxRecord[] {
    return this.transaction(() => {
      const rows = this.all(`SELECT * FROM outbox WHERE status = 'sending' ORDER BY id`).filter(
        (row) => !keep(toMessage(row)),
      );
      for (const row of rows) {
        this.run(
          `UPDATE outbox SET status = 'unknown', error_code = 'E_CHANNEL_OUTCOME_UNKNOWN', updated_at = ?
           WHERE id = ? AND status = 'sending'`,
          now,
          row.id,
        );
      }
      const audit = this.auditBatch('dispatcher', 'message.outcome');
      for (const row of rows) {
        audit.add(String(row.incident_id), now, {
          messageId: Number(row.id),
          status: 'unknown',
          attempt: Number(row.attempts),
          providerId: null,
          errorCode: 'E_CHANNEL_OUTCOME_UNKNOWN',
          retryAt: null,
        });
      }
      audit.flush();
      return rows.map((row) => toMessage({ ...row, status: 'unknown' }));
    });
  }

  /**
   * Withdraws every message of the incident that has not gone out yet (decided: approval
   * requests, messages held for quiet hours or waiting for a retry): each is marked failed with
   * E_ENGINE_INCIDENT_CLOSED (never sent, never fallen back) and audited. Returns how many.
   */
  withdrawUnsent(incidentId: string, now: string): number {
    return this.transaction(() => {
      const rows = this.all(
        `UPDATE outbox SET status = 'failed', error_code = 'E_ENGINE_INCIDENT_CLOSED',
           error_message = 'not sent: the incident closed before it went out', updated_at = ?
         WHERE incident_id = ? AND status = 'decided'
         RETURNING id`,
        now,
        incidentId,
      );
      for (const row of rows) {
        this.appendAudit({
          incidentId,
          at: now,
          actor: 'engine',
          type: 'message.withdrawn',
          data: { messageId: Number(row.id), reason: 'incident closed' },
        });
      }
      return rows.length;
    });
  }

  /**
   * Puts a claimed message back, unsent, to go at `notBefore`: it came too soon after the last
   * message to the same recipient. The claim's attempt is not counted.
   */
  deferClaimed(id: number, notBefore: string, now: string): void {
    this.run(
      `UPDATE outbox SET status = 'decided', attempts = attempts - 1, send_deadline = NULL,
         not_before = ?, updated_at = ?
       WHERE id = ? AND status = 'sending'`,
      notBefore,
      now,
      id,
    );
  }

  /**
   * Takes the accepted messages whose delivery receipt is overdue: each loses its deadline and
   * gets a `message.receipt-overdue` audit entry, in one transaction. Returns their ids.
   */
  takeOverdueReceipts(now: string): number[] {
    return this.transaction(() => {
      const rows = this.all(
        `UPDATE outbox SET receipt_due_at = NULL, updated_at = @now,
           error_code = 'E_CHANNEL_RECEIPT_OVERDUE',
           error_message = 'no delivery receipt within ' || (receipt_timeout_ms / 1000) || ' s'
         WHERE receipt_due_at IS NOT NULL AND receipt_due_at <= @now AND status = 'accepted'
         RETURNING id, incident_id, receipt_timeout_ms`,
        { now },
      );
      for (const row of rows) {
        this.appendAudit({
          incidentId: String(row.incident_id),
          at: now,
          actor: 'dispatcher',
          type: 'message.receipt-overdue',
          data: { messageId: Number(row.id), receiptTimeoutMs: Number(row.receipt_timeout_ms) },
        });
      }
      return rows.map((row) => Number(row.id)).sort((a, b) => a - b);
    });
  }

  /** When the next delivery receipt falls due, if any message waits for one. */
  nextReceiptDue(): string | undefined {
    const row = this.get(
      `SELECT min(receipt_due_at) AS at FROM outbox WHERE receipt_due_at IS NOT NULL AND status = 'accepted'`,
    );
    return row?.at === null || row?.at === undefined ? undefined : String(row.at);
  }

  /** Whether a message already holds this provider id. */
  /** Records that a fired stage's messages are decided in parts, from `nextIndex` on. */
  insertExpansion(expansion: ExpansionRecord): void {
    this.run(
      `INSERT INTO expansions (incident_id, stage_id, occurrence, fired_at, next_index, total)
       VALUES (@incidentId, @stageId, @occurrence, @firedAt, @nextIndex, @total)`,
      expansion,
    );
  }

  /** The oldest stage expansion still under way. */
  nextExpansion(): ExpansionRecord | undefined {
    const row = this.get('SELECT * FROM expansions ORDER BY fired_at, rowid LIMIT 1');
    return row
      ? {
          incidentId: String(row.incident_id),
          stageId: String(row.stage_id),
          occurrence: Number(row.occurrence),
          firedAt: String(row.fired_at),
          nextIndex: Number(row.next_index),
          total: Number(row.total),
        }
      : undefined;
  }

  /** Moves an expansion on to `nextIndex`, or ends it once it reached its total. */
  advanceExpansion(expansion: ExpansionRecord, nextIndex: number): void {
    const key = [expansion.incidentId, expansion.stageId, expansion.occurrence];
    if (nextIndex >= expansion.total) {
      this.run(
        'DELETE FROM expansions WHERE incident_id = ? AND stage_id = ? AND occurrence = ?',
        ...key,
      );
    } else {
      this.run(
        'UPDATE expansions SET next_index = ? WHERE incident_id = ? AND stage_id = ? AND occurrence = ?',
        nextIndex,
        ...key,
      );
    }
  }

  /** Ends every expansion of an incident (it closed); returns them as they stood. */
  dropExpansions(incidentId: string): ExpansionRecord[] {
    const rows = this.all('SELECT * FROM expansions WHERE incident_id = ?', incidentId);
    this.run('DELETE FROM expansions WHERE incident_id = ?', incidentId);
    return rows.map((row) => ({
      incidentId,
      stageId: String(row.stage_id),
      occurrence: Number(row.occurrence),
      firedAt: String(row.fired_at),
      nextIndex: Number(row.next_index),
      total: Number(row.total),
    }));
  }

  /** Messages still sending, as a previous process left them (claimed, answer never stored). */
  listSending(): OutboxRecord[] {
    return this.all(`SELECT * FROM outbox WHERE status = 'sending' ORDER BY id`).map(toMessage);
  }

  hasProviderId(providerId: string): boolean {
    return this.get('SELECT 1 AS one FROM outbox WHERE provider_id = ?', providerId) !== undefined;
  }

  getMessage(id: number): OutboxRecord | undefined {
    const row = this.get('SELECT * FROM outbox WHERE id = ?', id);
    return row ? toMessage(row) : undefined;
  }

  listMessages(incidentId: string): OutboxRecord[] {
    return this.all('SELECT * FROM outbox WHERE incident_id = ? ORDER BY id', incidentId).map(
      toMessage,
    );
  }

  /** When the next decided message may be sent, if any is waiting for a retry. */
  nextRetryAt(): string | undefined {
    const row = this.get(`SELECT min(not_before) AS at FROM outbox WHERE status = 'decided'`);
    return row?.at === null || row?.at === undefined ? undefined : String(row.at);
  }

  countMessages(status: OutboxRecord['status']): number {
    return Number(this.get('SELECT count(*) AS n FROM outbox WHERE status = ?', status)?.n ?? 0);
  }

  // Acknowledgements and audit

  insertAcknowledgement(ack: { incidentId: string; by: string; via: string; at: string }): void {
    this.run(
      'INSERT INTO acknowledgements (incident_id, acknowledged_by, via, at) VALUES (@incidentId, @by, @via, @at)',
      ack,
    );
  }

  appendAudit(entry: AuditEntry): void {
    this.run(
      'INSERT INTO audit (incident_id, at, actor, type, data) VALUES (?, ?, ?, ?, ?)',
      entry.incidentId,
      entry.at,
      entry.actor,
      entry.type,
      JSON.stringify(entry.data),
    );
  }

  /**
   * The incident's audit log, oldest first. Entries of messages written together are stored as
   * one row (see `auditBatch`) and read back as one entry per message, sharing its `seq`.
   */
  listAudit(incidentId: string): AuditRecord[] {
    return this.all('SELECT * FROM audit WHERE incident_id = ? ORDER BY seq', incidentId).flatMap(
      (row) => {
        const record: AuditRecord = {
          seq: Number(row.seq),
          incidentId: row.incident_id === null ? null : String(row.incident_id),
          at: String(row.at),
          actor: String(row.actor),
          type: String(row.type),
          data: JSON.parse(String(row.data)) as Record<string, unknown>,
        };
        const batched = BATCHED_TYPES.get(record.type);
        if (batched === undefined) return [record];
        const entries = record.data.messages as Record<string, unknown>[];
        return entries.map((data) => ({ ...record, type: batched, data }));
      },
    );
  }

  /**
   * Collects the audit entries of many messages (decisions, send outcomes) and writes them as
   * one row per incident and instant: a stage to 100,000 people adds hundreds of rows to the
   * log, not 200,000.
   */
  private auditBatch(actor: string, type: BatchedType): AuditBatch {
    const groups = new Map<string, { incidentId: string; at: string; messages: object[] }>();
    return {
      add: (incidentId, at, data) => {
        const key = `${incidentId}\u0000${at}`;
        let group = groups.get(key);
        if (!group) {
          group = { incidentId, at, messages: [] };
          groups.set(key, group);
        }
        group.messages.push(data);
      },
      flush: () => {
        for (const { incidentId, at, messages } of groups.values()) {
          this.appendAudit({ incidentId, at, actor, type: stored(type), data: { messages } });
        }
        groups.clear();
      },
    };
  }

  private checkVersion(file: string): void {
    const current = Number(this.db.pragma('user_version', { simple: true }));
    if (current === MIGRATIONS.length) return;
    if (current === 0) {
      throw new StoreError(
        'E_STORE',
        `"${file}" is not a Tocsin database (it is empty or another program's); give the file tocsin serve uses`,
      );
    }
    throw new StoreError(
      'E_STORE_MIGRATION',
      current > MIGRATIONS.length
        ? `database "${file}" has schema version ${current}, newer than this Tocsin knows (${MIGRATIONS.length}); upgrade Tocsin`
        : `database "${file}" has schema version ${current}, older than this Tocsin's (${MIGRATIONS.length}); start tocsin serve on it once to migrate it`,
    );
  }

  private migrate(file: string): void {
    const current = Number(this.db.pragma('user_version', { simple: true }));
    if (current > MIGRATIONS.length) {
      throw new StoreError(
        'E_STORE_MIGRATION',
        `database "${file}" has schema version ${current}, newer than this Tocsin knows (${MIGRATIONS.length}); upgrade Tocsin`,
      );
    }
    for (let version = current; version < MIGRATIONS.length; version++) {
      this.transaction(() => {
        this.db.exec(MIGRATIONS[version] ?? '');
        this.db.pragma(`user_version = ${version + 1}`);
      });
    }
  }

  private statement(sql: string): Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  private run(sql: string, ...params: unknown[]): RunResult {
    return this.statement(sql).run(...params);
  }

  private get(sql: string, ...params: unknown[]): Row | undefined {
    return this.statement(sql).get(...params) as Row | undefined;
  }

  private all(sql: string, ...params: unknown[]): Row[] {
    return this.statement(sql).all(...params) as Row[];
  }
}

function toIncident(row: Row): IncidentRecord {
  return {
    id: String(row.id),
    playbookVersionId: Number(row.playbook_version_id),
    status: row.status as IncidentStatus,
    dedupeKey: row.dedupe_key === null ? null : String(row.dedupe_key),
    variables: JSON.parse(String(row.variables)) as IncidentRecord['variables'],
    snapshot: JSON.parse(String(row.snapshot)) as unknown,
    createdBy: String(row.created_by),
    startedAt: String(row.started_at),
    updatedAt: String(row.updated_at),
    closedAt: row.closed_at === null ? null : String(row.closed_at),
    replyCode:
      row.reply_code === null || row.reply_code === undefined ? null : String(row.reply_code),
  };
}

function toTimer(row: Row): TimerRecord {
  return {
    incidentId: String(row.incident_id),
    timerId: String(row.timer_id),
    dueAt: String(row.due_at),
  };
}

function toMessage(row: Row): OutboxRecord {
  const text = (value: string | number | null | undefined): string | null =>
    value === null || value === undefined ? null : String(value);
  return {
    id: Number(row.id),
    incidentId: String(row.incident_id),
    stageId: String(row.stage_id),
    occurrence: Number(row.occurrence),
    audienceId: String(row.audience_id),
    personId: String(row.person_id),
    channel: String(row.channel),
    address: String(row.address),
    subject: text(row.subject),
    body: String(row.body),
    status: row.status as OutboxRecord['status'],
    attempts: Number(row.attempts),
    providerId: text(row.provider_id),
    errorCode: text(row.error_code),
    errorMessage: text(row.error_message),
    decidedAt: String(row.decided_at),
    sendDeadline: text(row.send_deadline),
    ...(row.not_before === null || row.not_before === undefined
      ? {}
      : { notBefore: String(row.not_before) }),
    ...(row.sms_encoding === null || row.sms_encoding === undefined
      ? {}
      : {
          smsEncoding: row.sms_encoding as 'GSM-7' | 'UCS-2',
          smsSegments: Number(row.sms_segments),
        }),
    updatedAt: String(row.updated_at),
  };
}

function plusMs(iso: string, ms: number): string {
  return new Date(Date.parse(iso) + ms).toISOString();
}
