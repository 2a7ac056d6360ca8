import { Ajv } from 'ajv';
import type { ValidateFunction } from 'ajv';

import schema from '../../schemas/alertmanager-webhook.schema.json' with { type: 'json' };
import { TocsinError } from '../errors.js';
import type { TriggerDefinition } from '../playbook/index.js';

/** One alert of an Alertmanager notification. */
export interface AlertmanagerAlert {
  status: 'firing' | 'resolved';
  labels: Record<string, string>;
  annotations?: Record<string, string>;
  startsAt?: string;
  endsAt?: string;
  generatorURL?: string;
  fingerprint?: string;
}

/** An Alertmanager webhook body (version 4), as far as Tocsin reads it. */
export interface AlertmanagerPayload {
  version: '4';
  groupKey: string;
  status: 'firing' | 'resolved';
  receiver?: string;
  groupLabels?: Record<string, string>;
  commonLabels?: Record<string, string>;
  commonAnnotations?: Record<string, string>;
  externalURL?: string;
  alerts: AlertmanagerAlert[];
}

let validate: ValidateFunction | undefined;

/**
 * Checks that a parsed JSON body is an Alertmanager version 4 notification.
 *
 * @throws TocsinError E_TRIGGER_PAYLOAD naming the first field that is wrong
 */
export function parseAlertmanagerPayload(body: unknown): AlertmanagerPayload {
  validate ??= new Ajv({ allErrors: false, strict: false }).compile(schema);
  if (validate(body)) return body as AlertmanagerPayload;

  const error = validate.errors?.[0];
  const path = error?.instancePath ? error.instancePath.slice(1).replace(/\//g, '.') : 'body';
  const missing =
    error?.keyword === 'required'
      ? ` lacks "${String(error.params.missingProperty)}"`
      : ` ${error?.message ?? 'is invalid'}`;
  throw new TocsinError(
    'E_TRIGGER_PAYLOAD',
    `Alertmanager payload: ${path}${missing}; send Alertmanager's webhook_config body (version "4")`,
  );
}

/** Whether a trigger's label matchers hold for at least one firing alert of the notification. */
export function matchesAlertmanager(
  trigger: TriggerDefinition,
  payload: AlertmanagerPayload,
): boolean {
  const wanted = Object.entries(trigger.match?.labels ?? {});
  const candidates =
    payload.status === 'firing'
      ? payload.alerts.filter((alert) => alert.status === 'firing')
      : payload.alerts;
  return candidates.some((alert) => wanted.every(([name, value]) => alert.labels[name] === value));
}

/** The incident identity of a notification: Alertmanager's group key, per playbook. */
export function toAlertmanagerDedupeKey(
  playbookName: string,
  payload: AlertmanagerPayload,
): string {
  return `alertmanager:${playbookName}:${payload.groupKey}`;
}
