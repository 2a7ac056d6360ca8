import { stringify } from 'csv-stringify/sync';

import type { AuditRecord, IncidentStore, MessageStatus } from '../src/index.js';

/** An incident's audit log as `tocsin audit` and `GET /api/incidents/:id/audit` give it. */
export interface AuditExport {
  incident: {
    id: string;
    playbook: { name: string; version: number };
    status: string;
    createdBy: string;
    startedAt: string;
    closedAt: string | null;
  };
  /** Every entry of the append-only log, in the order written. */
  events: AuditRecord[];
  /** Every message with where it ended: who, which channel, and the provider's outcome. */
  messages: {
    id: number;
    stageId: string;
    occurrence: number;
    audienceId: string;
    personId: string;
    channel: string;
    status: MessageStatus;
    attempts: number;
    providerId: string | null;
    errorCode: string | null;
    decidedAt: string;
    updatedAt: string;
  }[];
}

/** Reads an incident's audit export, or undefined when the incident does not exist. */
export function readAudit(store: IncidentStore, incidentId: string): AuditExport | undefined {
  const incident = store.getIncident(incidentId);
  if (!incident) return undefined;
  const version = store.getPlaybookVersion(incident.playbookVersionId);
  return {
    incident: {
      id: incident.id,
      playbook: { name: version?.name ?? 'unknown', version: version?.version ?? 0 },
      status: incident.status,
      createdBy: incident.createdBy,
      startedAt: incident.startedAt,
      closedAt: incident.closedAt,
    },
    events: store.listAudit(incidentId),
    // Addresses and texts are personal data; the export names people by their directory id.
    messages: store.listMessages(incidentId).map((message) => ({
      id: message.id,
      stageId: message.stageId,
      occurrence: message.occurrence,
      audienceId: message.audienceId,
      personId: message.personId,
      channel: message.channel,
      status: message.status,
      attempts: message.attempts,
      providerId: message.providerId,
      errorCode: message.errorCode,
      decidedAt: message.decidedAt,
      updatedAt: message.updatedAt,
    })),
  };
}

const CSV_COLUMNS = [
  'seq',
  'at',
  'actor',
  'type',
  'stage',
  'occurrence',
  'person',
  'channel',
  'message',
  'status',
  'detail',
] as const;

/**
 * The log as CSV, one row per entry. Each message's final outcome follows as a
 * `message.final` row, so a spreadsheet shows who was told what, and whether it arrived, without
 * replaying the log.
 */
export function formatAuditCsv(audit: AuditExport): string {
  const rows: Record<(typeof CSV_COLUMNS)[number], unknown>[] = audit.events.map((event) => {
    const {
      stageId,
      occurrence,
      personId,
      channel,
      messageId,
      status,
      ...detail
    }: Record<string, unknown> = event.data;
    return {
      seq: event.seq,
      at: event.at,
      actor: event.actor,
      type: event.type,
      stage: stageId,
      occurrence,
      person: personId,
      channel,
      message: messageId,
      status,
      detail: Object.keys(detail).length > 0 ? JSON.stringify(detail) : '',
    };
  });
  for (const message of audit.messages) {
    rows.push({
      seq: '',
      at: message.updatedAt,
      actor: 'outbox',
      type: 'message.final',
      stage: message.stageId,
      occurrence: message.occurrence,
      person: message.personId,
      channel: message.channel,
      message: message.id,
      status: message.status,
      detail: JSON.stringify({
        attempts: message.attempts,
        providerId: message.providerId,
        errorCode: message.errorCode,
      }),
    });
  }
  return stringify(rows, { header: true, columns: [...CSV_COLUMNS] });
}
