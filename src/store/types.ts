/** The state of an incident as stored. */
export type IncidentStatus = 'open' | 'resolved' | 'cancelled';

/** Where an outbox message is: decided, handed to a provider, or finished. */
export type MessageStatus =
  'decided' | 'sending' | 'accepted' | 'delivered' | 'read' | 'failed' | 'unknown';

export interface PlaybookVersionRecord {
  id: number;
  name: string;
  version: number;
  digest: string;
  file: string;
  source: string;
  loadedAt: string;
}

export interface IncidentRecord {
  id: string;
  playbookVersionId: number;
  status: IncidentStatus;
  dedupeKey: string | null;
  variables: Record<string, string | number | boolean>;
  snapshot: unknown;
  createdBy: string;
  startedAt: string;
  updatedAt: string;
  closedAt: string | null;
  /** Four digits that replies quote to name this incident, unique among open incidents. */
  replyCode?: string | null;
}

export interface TimerRecord {
  incidentId: string;
  timerId: string;
  dueAt: string;
}

/** A message the engine decided to send, before it has an id. */
export interface NewOutboxMessage {
  incidentId: string;
  stageId: string;
  occurrence: number;
  audienceId: string;
  personId: string;
  channel: string;
  address: string;
  subject: string | null;
  body: string;
  status: 'decided' | 'failed';
  errorCode: string | null;
  errorMessage: string | null;
  decidedAt: string;
  /** Hold the message until then, e.g. past the recipient's quiet hours. */
  notBefore?: string;
  /** SMS only: how the body is encoded and how many parts it takes (what the provider bills). */
  smsEncoding?: 'GSM-7' | 'UCS-2';
  smsSegments?: number;
  /** How long after the provider took it a delivery receipt must come, or the next channel is tried. */
  receiptTimeoutMs?: number;
}

export interface OutboxRecord extends Omit<NewOutboxMessage, 'status'> {
  id: number;
  status: MessageStatus;
  attempts: number;
  providerId: string | null;
  sendDeadline: string | null;
  updatedAt: string;
}

export interface AuditEntry {
  incidentId: string | null;
  at: string;
  actor: string;
  type: string;
  data: Record<string, unknown>;
}

export interface AuditRecord extends AuditEntry {
  seq: number;
}

/** The outcome of one send attempt. */
export interface SendOutcome {
  /** `unknown`: the provider may have taken it and cannot be asked; never sent again. */
  status: 'accepted' | 'failed' | 'decided' | 'unknown';
  providerId?: string;
  /** The provider that took it, or that refused it. */
  provider?: string;
  /** Whom a permanent failure concerns: the recipient, or the whole channel. */
  failureScope?: 'recipient' | 'channel';
  errorCode?: string;
  errorMessage?: string;
  /** For a retry (`decided` again): not before this instant. */
  notBefore?: string;
  /** Accepted by finding it at the provider after the answer to the send was lost. */
  reconciled?: boolean;
  /** The provider will post a delivery receipt for it (so its absence means something). */
  receiptExpected?: boolean;
}

/** Which process may write, until when. */
export interface LeaseRecord {
  holder: string;
  acquiredAt: string;
  expiresAt: string;
}

/** A fired stage whose messages are decided in parts: the part to decide next. */
export interface ExpansionRecord {
  incidentId: string;
  stageId: string;
  occurrence: number;
  firedAt: string;
  /** Index of the next (audience, person) pair of the stage to decide. */
  nextIndex: number;
  /** How many pairs the stage has in all. */
  total: number;
}

/** What a provider reported later about a message it accepted. */
export interface DeliveryReceipt {
  provider: string;
  providerId: string;
  /** Where the message got to; other provider states (queued, sent) change nothing. */
  status: 'delivered' | 'read' | 'failed';
  /** The provider's own word for it, such as undelivered, for the audit log. */
  providerStatus: string;
  errorCode?: string;
  at: string;
}
