/**
 * The database schema, as an ordered list of migrations. A migration never changes once
 * released; a new one is appended.
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE playbook_versions (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    digest TEXT NOT NULL,
    file TEXT NOT NULL,
    source TEXT NOT NULL,
    loaded_at TEXT NOT NULL,
    UNIQUE (name, digest)
  );

  CREATE TABLE incidents (
    id TEXT PRIMARY KEY,
    playbook_version_id INTEGER NOT NULL REFERENCES playbook_versions (id),
    status TEXT NOT NULL CHECK (status IN ('open', 'resolved', 'cancelled')),
    dedupe_key TEXT,
    variables TEXT NOT NULL,
    snapshot TEXT NOT NULL,
    created_by TEXT NOT NULL,
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    closed_at TEXT
  );
  CREATE UNIQUE INDEX incidents_open_dedupe ON incidents (dedupe_key)
    WHERE status = 'open' AND dedupe_key IS NOT NULL;

  CREATE TABLE timers (
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    timer_id TEXT NOT NULL,
    due_at TEXT NOT NULL,
    PRIMARY KEY (incident_id, timer_id)
  );
  CREATE INDEX timers_due ON timers (due_at);

  CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    stage_id TEXT NOT NULL,
    occurrence INTEGER NOT NULL DEFAULT 1,
    audience_id TEXT NOT NULL,
    person_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    address TEXT NOT NULL,
    subject TEXT,
    body TEXT NOT NULL,
    status TEXT NOT NULL
      CHECK (status IN ('decided', 'sending', 'accepted', 'delivered', 'failed', 'unknown')),
    attempts INTEGER NOT NULL DEFAULT 0,
    provider_id TEXT,
    error_code TEXT,
    error_message TEXT,
    decided_at TEXT NOT NULL,
    send_deadline TEXT,
    not_before TEXT,
    updated_at TEXT NOT NULL,
    UNIQUE (incident_id, stage_id, occurrence, person_id, channel)
  );
  CREATE INDEX outbox_pending ON outbox (status, id);

  CREATE TABLE acknowledgements (
    id INTEGER PRIMARY KEY,
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    acknowledged_by TEXT NOT NULL,
    via TEXT NOT NULL,
    at TEXT NOT NULL
  );

  CREATE TABLE audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id TEXT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL
  );
  CREATE INDEX audit_incident ON audit (incident_id, seq);
  CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE (ABORT, 'the audit log is append-only'); END;
  CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE (ABORT, 'the audit log is append-only'); END;
  `,
  // 2: one process at a time writes: the lease names it, and every write checks it.
  `
  CREATE TABLE lease (
    name TEXT PRIMARY KEY CHECK (name = 'writer'),
    holder TEXT NOT NULL,
    acquired_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
  );
  `,
  // 3: delivery receipts find their message by the provider's id.
  `
  CREATE INDEX outbox_provider ON outbox (provider_id) WHERE provider_id IS NOT NULL;
  `,
  // 4: a short code per open incident that replies quote, and the opt-out ledger.
  `
  ALTER TABLE incidents ADD COLUMN reply_code TEXT;
  CREATE INDEX incidents_reply_code ON incidents (reply_code) WHERE reply_code IS NOT NULL;
  CREATE TABLE opt_outs (
    person_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    at TEXT NOT NULL,
    via TEXT NOT NULL,
    PRIMARY KEY (person_id, channel)
  );
  `,
  // 5: when each person last wrote to us on a channel (WhatsApp's 24-hour window).
  `
  CREATE TABLE reply_windows (
    channel TEXT NOT NULL,
    address TEXT NOT NULL,
    last_inbound_at TEXT NOT NULL,
    PRIMARY KEY (channel, address)
  );
  `,
  // 6: receipts that beat the send's answer wait for it; SMS rows keep their encoding and parts.
  `
  CREATE TABLE early_receipts (
    provider TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    status TEXT NOT NULL,
    provider_status TEXT NOT NULL,
    error_code TEXT,
    at TEXT NOT NULL
  );
  CREATE INDEX early_receipts_provider_id ON early_receipts (provider_id);
  ALTER TABLE outbox ADD COLUMN sms_encoding TEXT;
  ALTER TABLE outbox ADD COLUMN sms_segments INTEGER;
  `,
  // 7: a message that must be confirmed delivered by a deadline, or its person is tried on the
  // next channel.
  `
  ALTER TABLE outbox ADD COLUMN receipt_timeout_ms INTEGER;
  ALTER TABLE outbox ADD COLUMN receipt_due_at TEXT;
  CREATE INDEX outbox_receipt_due ON outbox (receipt_due_at) WHERE receipt_due_at IS NOT NULL;
  `,
  // 8: a stage fired to more people than one transaction decides: where its expansion stands.
  `
  CREATE TABLE expansions (
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    stage_id TEXT NOT NULL,
    occurrence INTEGER NOT NULL,
    fired_at TEXT NOT NULL,
    next_index INTEGER NOT NULL,
    total INTEGER NOT NULL,
    PRIMARY KEY (incident_id, stage_id, occurrence)
  );
  `,
];
