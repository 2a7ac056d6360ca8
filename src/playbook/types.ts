import type { Duration } from 'luxon';

import type { TimeWindow } from '../time/index.js';

/** A channel kind a playbook can send over; the service config maps each kind to a provider. */
export type ChannelKind = 'sms' | 'whatsapp' | 'email' | 'chat';

/** A weekday as playbooks write it. */
export type Weekday = 'mon' | 'tue' | 'wed' | 'thu' | 'fri' | 'sat' | 'sun';

/** How sensitive content is; a channel's trust and an audience's limit use the same scale. */
export type Sensitivity = 'public' | 'internal' | 'confidential' | 'restricted';

/** Events of the incident that can fire a stage. */
export type StageEvent =
  'acknowledged' | 'resolved' | 'cancelled' | 'approval-timed-out' | 'ack-timed-out';

/** What happens when an approval gate times out. */
export type ApprovalTimeoutPolicy = 'hold' | 'send' | 'escalate';

/** The playbook as written in YAML, after the schema accepted it. */
export interface PlaybookDefinition {
  apiVersion: 'tocsin/v1';
  kind: 'Playbook';
  metadata: { name: string; version: number; owner?: string; description?: string };
  locale?: string;
  channels?: Partial<Record<ChannelKind, { trust?: Sensitivity; transliterate?: boolean }>>;
  limits?: { smsSegments?: number };
  hours?: {
    business?: { zone: string; days?: Weekday[]; from: string; to: string };
    quiet?: { from: string; to: string };
  };
  triggers: TriggerDefinition[];
  responsibilities?: { declare?: string[]; communicate?: string[] };
  acknowledgement?: { mode?: 'first' | 'all' | 'quorum'; quorum?: number; audience?: string };
  variables?: Record<string, VariableDefinition>;
  audiences: Record<string, AudienceDefinition>;
  stages: StageDefinition[];
  messages: Record<string, Record<string, MessageDefinition>>;
}

/** Where incidents come from. */
export type TriggerSource = 'alertmanager' | 'grafana' | 'pagerduty' | 'json' | 'manual';

export interface TriggerDefinition {
  source: TriggerSource;
  match?: { labels?: Record<string, string>; fields?: Record<string, string | number | boolean> };
  dedupeKey?: string;
  resolveWhen?: { field: string; equals: string | number | boolean };
  variables?: Record<string, string>;
}

export interface VariableDefinition {
  type: 'string' | 'number' | 'boolean' | 'enum' | 'duration';
  description?: string;
  values?: string[];
  default?: string | number | boolean;
  example?: string | number | boolean;
  sensitivity?: Sensitivity;
}

export interface AudienceDefinition {
  description?: string;
  select: { roles?: string[]; groups?: string[]; tags?: string[] };
  channels: ChannelKind[];
  maxSensitivity?: Sensitivity;
}

export interface StageDefinition {
  id: string;
  description?: string;
  after?: string;
  on?: StageEvent;
  unless?: 'acknowledged';
  every?: string;
  until?: 'resolved' | 'acknowledged';
  approval?: {
    roles: string[];
    quorum?: number;
    timeout?: string;
    onTimeout?: ApprovalTimeoutPolicy;
  };
  ackTimeout?: string;
  receiptTimeout?: string;
  critical?: boolean;
  during?: 'business';
  audiences: string[];
}

/** One language's texts of a message, per channel. */
export interface MessageVariantDefinition {
  sms?: string;
  whatsapp?: {
    text?: string;
    template?: { name: string; language: string; parameters?: string[] };
  };
  email?: { subject: string; text: string };
  /** Text posted to a team's chat room (Slack, Teams) or a JSON webhook. */
  chat?: string;
}

/** A message in the playbook's locale, with translations. */
export interface MessageDefinition extends MessageVariantDefinition {
  locales?: Record<string, MessageVariantDefinition>;
}

/** An approval gate with its timeout read. */
export interface ApprovalGate {
  roles: string[];
  quorum: number;
  timeout?: Duration;
  onTimeout: ApprovalTimeoutPolicy;
}

/** A stage with its timing read: either an offset from the start or an event. */
export type Stage =
  | {
      id: string;
      kind: 'timed';
      after: Duration;
      unlessAcknowledged: boolean;
      /** For a repeating stage: how often, and what ends it. */
      every?: Duration;
      until?: 'resolved' | 'acknowledged';
      approval?: ApprovalGate;
      /** Business hours the stage waits for, when it has `during: business`. */
      businessHours?: TimeWindow;
      /** How long its recipients have to acknowledge before `on: ack-timed-out` stages fire. */
      ackTimeout?: Duration;
      audiences: string[];
    }
  | {
      id: string;
      kind: 'event';
      on: StageEvent;
      approval?: ApprovalGate;
      ackTimeout?: Duration;
      audiences: string[];
    };

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
