import type {
  IncidentContext,
  IncidentRecord,
  IncidentStore,
  OutboxRecord,
} from '../../src/index.js';

/** An incident as the API shows it. Addresses stay out; bodies are shown to the operator. */
export interface IncidentView {
  id: string;
  playbook: { name: string; version: number };
  status: IncidentRecord['status'];
  state: string;
  acknowledged: boolean;
  acknowledgedBy: string | null;
  /** Who acknowledged so far, and how many must. */
  acks: string[];
  acksNeeded: number;
  createdBy: string;
  startedAt: string;
  closedAt: string | null;
  pendingStages: { stageId: string; dueAt: string }[];
  firedStages: { stageId: string; at: string }[];
  awaitingApproval: { stageId: string; requestedAt: string; approvedBy: string[] }[];
  messageCounts: Record<string, number>;
  messages?: MessageView[];
}

export interface MessageView {
  id: number;
  stageId: string;
  audienceId: string;
  personId: string;
  channel: string;
  status: OutboxRecord['status'];
  attempts: number;
  providerId: string | null;
  errorCode: string | null;
  subject: string | null;
  body: string;
  decidedAt: string;
  updatedAt: string;
}

/** Builds the API view of an incident from the store. */
export function toIncidentView(
  store: IncidentStore,
  incident: IncidentRecord,
  withMessages: boolean,
): IncidentView {
  const version = store.getPlaybookVersion(incident.playbookVersionId);
  const snapshot = incident.snapshot as { value?: unknown; context?: IncidentContext };
  const context = snapshot.context;
  const messages = store.listMessages(incident.id);
  const messageCounts: Record<string, number> = {};
  for (const message of messages)
    messageCounts[message.status] = (messageCounts[message.status] ?? 0) + 1;

  const view: IncidentView = {
    id: incident.id,
    playbook: { name: version?.name ?? 'unknown', version: version?.version ?? 0 },
    status: incident.status,
    state: toStateName(snapshot.value),
    acknowledged: (context?.acknowledgedAt ?? null) !== null,
    acknowledgedBy: context?.acknowledgedBy ?? null,
    acks: context?.acks ?? [],
    acksNeeded: context?.ackRequired ?? 1,
    createdBy: incident.createdBy,
    startedAt: incident.startedAt,
    closedAt: incident.closedAt,
    pendingStages: (context?.timers ?? []).map((timer) => ({
      stageId: timer.stageId,
      dueAt: timer.dueAt,
    })),
    firedStages: (context?.fired ?? []).map((decision) => ({
      stageId: decision.stageId,
      at: decision.at,
    })),
    awaitingApproval: (context?.pending ?? []).map((pending) => ({
      stageId: pending.stageId,
      requestedAt: pending.requestedAt,
      approvedBy: pending.approvedBy,
    })),
    messageCounts,
  };
  if (withMessages) view.messages = messages.map(toMessageView);
  return view;
}

function toMessageView(message: OutboxRecord): MessageView {
  return {
    id: message.id,
    stageId: message.stageId,
    audienceId: message.audienceId,
    personId: message.personId,
    channel: message.channel,
    status: message.status,
    attempts: message.attempts,
    providerId: message.providerId,
    errorCode: message.errorCode,
    subject: message.subject,
    body: message.body,
    decidedAt: message.decidedAt,
    updatedAt: message.updatedAt,
  };
}

function toStateName(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value !== null && typeof value === 'object') {
    const [key, inner] = Object.entries(value)[0] ?? [];
    return key === undefined ? 'unknown' : `${key}.${toStateName(inner)}`;
  }
  return 'unknown';
}
