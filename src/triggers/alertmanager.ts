import { WEBHOOK_SOURCES } from './sources.js';

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

/**
 * Checks that a parsed JSON body is an Alertmanager version 4 notification.
 *
 * @throws TocsinError E_TRIGGER_PAYLOAD naming the first field that is wrong
 */
export function parseAlertmanagerPayload(body: unknown): AlertmanagerPayload {
  return WEBHOOK_SOURCES.alertmanager.parse(body) as AlertmanagerPayload;
}
