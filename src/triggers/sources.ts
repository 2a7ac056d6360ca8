import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';

import type { Ajv, ValidateFunction } from 'ajv';

import alertmanagerSchema from '../../schemas/alertmanager-webhook.schema.json' with { type: 'json' };
import grafanaSchema from '../../schemas/grafana-webhook.schema.json' with { type: 'json' };
import pagerdutySchema from '../../schemas/pagerduty-webhook.schema.json' with { type: 'json' };
import { TocsinError } from '../errors.js';
import type { TriggerDefinition, TriggerSource } from '../playbook/index.js';
import { readPath } from './variables.js';

/** A webhook source: how its bodies are checked, matched, deduplicated and resolved. */
export interface WebhookSource {
  name: Exclude<TriggerSource, 'manual'>;
  /** Checks the body's shape. @throws TocsinError E_TRIGGER_PAYLOAD */
  parse(body: unknown): unknown;
  matches(trigger: TriggerDefinition, payload: unknown): boolean;
  /** Whether the payload ends the incident instead of starting one. */
  isResolution(trigger: TriggerDefinition, payload: unknown): boolean;
  /** What identifies the incident across repeated deliveries; undefined when the payload lacks it. */
  dedupeKey(trigger: TriggerDefinition, playbook: string, payload: unknown): string | undefined;
}

interface AlertGroup {
  groupKey: string;
  status: 'firing' | 'resolved';
  alerts: { status: string; labels: Record<string, string> }[];
}

type SchemaSource = 'alertmanager' | 'grafana' | 'pagerduty';

/** Validators compiled by scripts/build-validators.mjs, each with the digest of its schema. */
type Precompiled = Record<SchemaSource, ValidateFunction> & {
  digests: Record<SchemaSource, string>;
};

// Compiled at build time, so `serve` does not load the ajv compiler; run from source, or with a
// schema edited after the build, ajv compiles at run time instead.
const precompiled = await import(new URL('./webhook-validators.js', import.meta.url).href).then(
  (module) => module as Precompiled,
  () => undefined,
);
let ajv: Ajv | undefined;
const validators = new Map<string, ValidateFunction>();

// Alertmanager and Grafana send the same alert-group shape; a group resolves only when all its
// alerts have (Alertmanager's `status` says so), and `groupKey` names the group.
function alertGroupSource(
  name: 'alertmanager' | 'grafana',
  schema: object,
  version: string,
): WebhookSource {
  return {
    name,
    parse: (body) =>
      check(name, schema, body, `send the ${label(name)} webhook body (version "${version}")`),
    matches: (trigger, payload) => {
      const group = payload as AlertGroup;
      const wanted = Object.entries(trigger.match?.labels ?? {});
      const alerts =
        group.status === 'firing'
          ? group.alerts.filter((alert) => alert.status === 'firing')
          : group.alerts;
      return alerts.some((alert) => wanted.every(([key, value]) => alert.labels[key] === value));
    },
    isResolution: (_trigger, payload) => (payload as AlertGroup).status === 'resolved',
    dedupeKey: (_trigger, playbook, payload) =>
      `${name}:${playbook}:${(payload as AlertGroup).groupKey}`,
  };
}

const PAGERDUTY_STARTS = new Set(['incident.triggered', 'incident.reopened']);

/** The webhook sources Tocsin understands, by name. */
export const WEBHOOK_SOURCES: Record<WebhookSource['name'], WebhookSource> = {
  alertmanager: alertGroupSource('alertmanager', alertmanagerSchema, '4'),
  grafana: alertGroupSource('grafana', grafanaSchema, '1'),
  pagerduty: {
    name: 'pagerduty',
    parse: (body) => check('pagerduty', pagerdutySchema, body, 'send a PagerDuty v3 webhook body'),
    matches: (trigger, payload) => {
      const type = String(readPath(payload, 'event.event_type'));
      const relevant = PAGERDUTY_STARTS.has(type) || type === 'incident.resolved';
      return relevant && matchesFields(trigger, payload);
    },
    isResolution: (_trigger, payload) =>
      readPath(payload, 'event.event_type') === 'incident.resolved',
    // The PagerDuty incident, not the delivery: its triggered and resolved events share it.
    dedupeKey: (_trigger, playbook, payload) =>
      `pagerduty:${playbook}:${String(readPath(payload, 'event.data.id'))}`,
  },
  json: {
    name: 'json',
    parse: (body) => {
      if (body === null || typeof body !== 'object' || Array.isArray(body)) {
        throw new TocsinError('E_TRIGGER_PAYLOAD', 'JSON webhook: the body must be a JSON object');
      }
      return body;
    },
    matches: (trigger, payload) => matchesFields(trigger, payload),
    isResolution: (trigger, payload) =>
      trigger.resolveWhen !== undefined &&
      readPath(payload, trigger.resolveWhen.field) === trigger.resolveWhen.equals,
    dedupeKey: (trigger, playbook, payload) => {
      const value =
        trigger.dedupeKey === undefined ? undefined : readPath(payload, trigger.dedupeKey);
      if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
        return undefined;
      }
      return `json:${playbook}:${String(value)}`;
    },
  },
};

/** Whether `name` is a webhook source. */
export function isWebhookSource(name: string): name is WebhookSource['name'] {
  return Object.prototype.hasOwnProperty.call(WEBHOOK_SOURCES, name);
}

function matchesFields(trigger: TriggerDefinition, payload: unknown): boolean {
  return Object.entries(trigger.match?.fields ?? {}).every(
    ([field, value]) => readPath(payload, field) === value,
  );
}

function check(name: SchemaSource, schema: object, body: unknown, fix: string): unknown {
  let validate = validators.get(name);
  if (!validate) {
    validate =
      precompiled?.digests[name] === schemaDigest(schema) ? precompiled[name] : compile(schema);
    validators.set(name, validate);
  }
  if (validate(body)) return body;

  const error = validate.errors?.[0];
  const path = error?.instancePath ? error.instancePath.slice(1).replace(/\//g, '.') : 'body';
  const what =
    error?.keyword === 'required'
      ? ` lacks "${String(error.params.missingProperty)}"`
      : error?.keyword === 'enum'
        ? ` must be one of ${(error.params.allowedValues as unknown[]).map((value) => JSON.stringify(value)).join(', ')}`
        : ` ${error?.message ?? 'is invalid'}`;
  throw new TocsinError('E_TRIGGER_PAYLOAD', `${label(name)} payload: ${path}${what}; ${fix}`);
}

function compile(schema: object): ValidateFunction {
  if (!ajv) {
    // ajv is CommonJS; required here, it loads only when a validator was not built ahead.
    const { Ajv: AjvClass } = createRequire(import.meta.url)('ajv') as typeof import('ajv');
    ajv = new AjvClass({ allErrors: false, strict: false });
  }
  return ajv.compile(schema);
}

/** Must match `schemaDigest` in scripts/build-validators.mjs. */
function schemaDigest(schema: object): string {
  return createHash('sha256').update(JSON.stringify(schema)).digest('hex');
}

function label(name: string): string {
  const labels: Record<string, string> = {
    alertmanager: 'Alertmanager',
    grafana: 'Grafana',
    pagerduty: 'PagerDuty',
  };
  return labels[name] ?? name;
}
