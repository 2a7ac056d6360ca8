import type { Duration } from 'luxon';

/** A channel kind a playbook can send over; the service config maps each kind to a provider. */
export type ChannelKind = 'sms' | 'email';

/** Events of the incident that can fire a stage. */
export type StageEvent = 'acknowledged' | 'resolved';

/** The playbook as written in YAML, after the schema accepted it. */
export interface PlaybookDefinition {
  apiVersion: 'tocsin/v1';
  kind: 'Playbook';
  metadata: { name: string; version: number; owner?: string; description?: string };
  triggers: TriggerDefinition[];
  variables?: Record<string, VariableDefinition>;
  audiences: Record<string, AudienceDefinition>;
  stages: StageDefinition[];
  messages: Record<string, Record<string, MessageDefinition>>;
}

export interface TriggerDefinition {
  source: 'alertmanager';
  match?: { labels?: Record<string, string> };
  variables?: Record<string, string>;
}

export interface VariableDefinition {
  type: 'string' | 'number' | 'boolean';
  description?: string;
  default?: string | number | boolean;
}

export interface AudienceDefinition {
  description?: string;
  select: { roles?: string[]; groups?: string[] };
  channels: ChannelKind[];
}

export interface StageDefinition {
  id: string;
  description?: string;
  after?: string;
  on?: StageEvent;
  unless?: 'acknowledged';
  audiences: string[];
}

export interface MessageDefinition {
  sms?: string;
  email?: { subject: string; text: string };
}

/** A stage with its timing read: either an offset from the start or an event. */
export type Stage =
  | { id: string; kind: 'timed'; after: Duration; unlessAcknowledged: boolean; audiences: string[] }
  | { id: string; kind: 'event'; on: StageEvent; audiences: string[] };

/** A checked playbook, ready to compile into a machine. */
export interface Playbook {
  name: string;
  version: number;
  /** SHA-256 of the source text: two loads of the same text are the same playbook version. */
  digest: string;
  file: string;
  source: string;
  definition: PlaybookDefinition;
  stages: Stage[];
}
