import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto';

import { Hono } from 'hono';
import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';

import {
  isTwilioSignatureValid,
  isWebhookSource,
  readTwilioForm,
  TocsinError,
  verifyGrafanaSignature,
  verifyPagerDutySignature,
  WEBHOOK_SOURCES,
} from '../../src/index.js';
import type { DeliveryReceipt, Engine, IncidentStore, Logger } from '../../src/index.js';
import { formatAuditCsv, readAudit } from '../audit.js';
import { HttpError } from '../errors.js';
import type { MessageRecorder } from '../sandbox/recorder.js';
import { toIncidentView } from './views.js';

/** What the HTTP app needs. */
export interface AppDeps {
  engine: Engine;
  store: IncidentStore;
  log: Logger;
  token: string;
  maxBodyBytes: number;
  /** Present in sandbox mode only: serves `GET /sandbox/messages`. */
  recorder?: MessageRecorder;
  /** Signing secrets of webhook sources that sign their bodies. */
  webhookSecrets?: WebhookSecrets;
  /**
   * Whether this process holds the writer lease (active) or waits for it (standby); a standby
   * answers 503 to everything but health, so a load balancer sends the work to the active one.
   */
  role?: () => { role: 'active' | 'standby'; holder?: string };
  /**
   * Twilio's callbacks: the auth token that signs them, and the public base URL Twilio calls,
   * which the signature covers. Without it, `/providers/twilio/*` answers 404.
   */
  twilio?: { authToken: string; publicUrl: () => string };
  /** Vonage's delivery receipts: the token their callback URL carries. */
  vonage?: { token: string };
  /** WhatsApp's webhooks: the app secret that signs them, and the URL verification token. */
  whatsapp?: { appSecret: string; verifyToken: string };
}

/** Secrets that PagerDuty and Grafana sign their webhook bodies with. */
export interface WebhookSecrets {
  pagerduty?: string;
  grafana?: string;
  /** The header carrying the time Grafana signed with; set, old requests are refused. */
  grafanaTimestampHeader?: string;
}

/** How far a signed request's time may be from this service's clock. */
const SIGNATURE_TOLERANCE_MS = 5 * 60_000;

type Env = { Variables: { requestId: string; log: Logger } };

const CLIENT_STATUS_BY_CODE: Partial<Record<string, HttpError['status']>> = {
  E_TRIGGER_PAYLOAD: 422,
  E_ENGINE_VARIABLE: 422,
  E_ENGINE_UNKNOWN_INCIDENT: 404,
  E_ENGINE_INCIDENT_CLOSED: 409,
  E_ENGINE_NOT_APPROVER: 403,
  E_ENGINE_NOT_DECLARER: 403,
  E_ENGINE_UNKNOWN_PLAYBOOK: 404,
  E_STORE_LEASE_LOST: 503,
};

/**
 * The service's HTTP face: trigger webhooks under `/hooks`, the API for people under `/api`
 * (both behind the bearer token), health, and the sandbox's message list in sandbox mode.
 */
export function createApp(deps: AppDeps): Hono<Env> {
  const app = new Hono<Env>();

  app.use('*', requestLogger(deps.log));
  app.onError((error, c) => toErrorResponse(error, c));
  app.notFound((c) =>
    c.json(
      { error: `no route for ${c.req.method} ${c.req.path}; see the README for the API` },
      404,
    ),
  );

  const role = deps.role ?? (() => ({ role: 'active' as const }));
  app.get('/healthz', (c) => c.json({ status: 'ok', role: role().role }));

  app.use('/hooks/*', bearerAuth(deps.token));
  app.use('/api/*', bearerAuth(deps.token));
  const activeOnly: MiddlewareHandler<Env> = async (c, next) => {
    const current = role();
    if (current.role === 'active') return next();
    c.header('retry-after', '5');
    throw new HttpError(
      503,
      `this instance is on standby; ${current.holder ?? 'another process'} holds the writer lease, so send to that one`,
    );
  };
  app.use('/hooks/*', activeOnly);
  app.use('/api/*', activeOnly);
  app.use('/providers/*', activeOnly);

  if (deps.whatsapp) {
    const whatsapp = deps.whatsapp;
    // Meta checks the URL once: it must echo the challenge when the token matches.
    app.get('/providers/whatsapp', (c) => {
      const matches =
        c.req.query('hub.mode') === 'subscribe' &&
        safeEqual(c.req.query('hub.verify_token') ?? '', whatsapp.verifyToken);
      if (!matches)
        throw new HttpError(403, 'hub.verify_token does not match; check the verify token');
      return c.text(c.req.query('hub.challenge') ?? '');
    });
    // Statuses and replies, signed with X-Hub-Signature-256 over the raw body.
    app.post('/providers/whatsapp', jsonBodyLimit(deps.maxBodyBytes), async (c) => {
      const raw = await c.req.text();
      const expected = `sha256=${createHmac('sha256', whatsapp.appSecret).update(raw).digest('hex')}`;
      if (!safeEqual(c.req.header('x-hub-signature-256') ?? '', expected)) {
        throw new HttpError(403, 'X-Hub-Signature-256 does not match; check the app secret');
      }
      let payload: unknown;
      try {
        payload = JSON.parse(raw) as unknown;
      } catch {
        throw new HttpError(400, 'the body is not JSON');
      }
      const counts = handleWhatsAppChanges(payload, deps);
      c.get('log').info({ provider: 'whatsapp', ...counts }, 'whatsapp webhook');
      return c.json({ received: true });
    });
  }

  if (deps.twilio) {
    const twilio = deps.twilio;
    // Delivery receipts: Twilio posts the message's status as a signed form.
    app.post('/providers/twilio/status', async (c) => {
      const params = await readSignedTwilioForm(c, twilio);
      const receipt = toTwilioReceipt(params);
      if (!receipt) return c.body(null, 204);
      const messageId = deps.store.recordReceipt(receipt);
      if (messageId !== undefined && receipt.status === 'failed') deps.engine.fallBack(messageId);
      c.get('log').info(
        { provider: 'twilio', status: receipt.status, errorCode: receipt.errorCode, messageId },
        messageId === undefined ? 'receipt for no message awaiting one' : 'delivery receipt',
      );
      return c.body(null, 204);
    });

    // Replies: an SMS to the sending number. Twilio posts it signed; the answer is TwiML.
    app.post('/providers/twilio/inbound', async (c) => {
      const params = await readSignedTwilioForm(c, twilio);
      const field = (name: string): string => {
        const value = params[name];
        return (typeof value === 'string' ? value : value?.[0]) ?? '';
      };
      const from = field('From');
      if (!from) throw new HttpError(422, 'a Twilio inbound message needs From');
      const result = deps.engine.handleReply({
        channel: 'sms',
        address: from,
        text: field('Body'),
      });
      c.header('content-type', 'text/xml; charset=utf-8');
      const message = result.answer ? `<Message>${escapeXml(result.answer)}</Message>` : '';
      return c.body(`<?xml version="1.0" encoding="UTF-8"?><Response>${message}</Response>`);
    });
  }

  if (deps.vonage) {
    const vonage = deps.vonage;
    // Delivery receipts, one per part: a GET with a query, or a POST of JSON or a form.
    app.on(
      ['GET', 'POST'],
      '/providers/vonage/status',
      jsonBodyLimit(deps.maxBodyBytes),
      async (c) => {
        if (!safeEqual(c.req.query('token') ?? '', vonage.token)) {
          throw new HttpError(
            403,
            'the receipt URL token does not match; use the callback URL Tocsin sends',
          );
        }
        const params = c.req.method === 'GET' ? c.req.query() : await readVonageBody(c);
        const receipt = toVonageReceipt(params, deps.store);
        if (!receipt) return c.body(null, 204);
        const messageId = deps.store.recordReceipt(receipt);
        if (messageId !== undefined && receipt.status === 'failed') deps.engine.fallBack(messageId);
        c.get('log').info(
          { provider: 'vonage', status: receipt.status, errorCode: receipt.errorCode, messageId },
          messageId === undefined ? 'receipt for no message awaiting one' : 'delivery receipt',
        );
        return c.body(null, 204);
      },
    );
  }

  app.post('/hooks/:source', jsonBodyLimit(deps.maxBodyBytes), async (c) => {
    const sourceName = c.req.param('source');
    if (!isWebhookSource(sourceName)) {
      throw new HttpError(
        404,
        `no webhook source "${sourceName}"; use one of ${Object.keys(WEBHOOK_SOURCES).join(', ')}`,
      );
    }
    const { text, value } = await readJsonText(c);
    checkSignature(sourceName, text, c, deps.webhookSecrets ?? {});
    const payload = WEBHOOK_SOURCES[sourceName].parse(value);
    const outcomes = deps.engine.handleWebhook(sourceName, payload, sourceName);
    c.get('log').info({ source: sourceName, outcomes: outcomes.length }, 'webhook received');
    return c.json({ incidents: outcomes });
  });

  app.post('/api/incidents', jsonBodyLimit(deps.maxBodyBytes), async (c) => {
    const body = await readJson(c);
    const request = body as { playbook?: unknown; variables?: unknown } | null;
    if (typeof request?.playbook !== 'string') {
      throw new HttpError(
        422,
        'the body must name the playbook: {"playbook": "data-breach", "by": "frieda", "variables": {...}}',
      );
    }
    const by = readActor(body, deps.engine);
    if (by === 'api')
      throw new HttpError(422, 'starting an incident must say who does: {"by": "person-id"}');
    const variables = readVariables(request.variables);
    const incident = deps.engine.declare({ playbook: request.playbook, variables, by });
    return c.json(toIncidentView(deps.store, incident, false), 201);
  });

  app.get('/api/incidents', (c) => {
    const incidents = deps.store.listIncidents({ limit: 100 });
    return c.json({
      incidents: incidents.map((incident) => toIncidentView(deps.store, incident, false)),
    });
  });

  app.get('/api/incidents/:id', (c) => {
    const incident = deps.store.getIncident(c.req.param('id'));
    if (!incident)
      throw new HttpError(
        404,
        `no incident has id "${c.req.param('id')}"; list them with GET /api/incidents`,
      );
    return c.json(toIncidentView(deps.store, incident, true));
  });

  app.get('/api/incidents/:id/audit', (c) => {
    const audit = readAudit(deps.store, c.req.param('id'));
    if (!audit)
      throw new HttpError(
        404,
        `no incident has id "${c.req.param('id')}"; list them with GET /api/incidents`,
      );
    const format = c.req.query('format') ?? 'json';
    if (format === 'csv') {
      c.header('content-type', 'text/csv; charset=utf-8');
      return c.body(formatAuditCsv(audit));
    }
    if (format !== 'json')
      throw new HttpError(400, `format "${format}" is unknown; use json or csv`);
    return c.json(audit);
  });

  app.post('/api/incidents/:id/ack', jsonBodyLimit(deps.maxBodyBytes), async (c) => {
    const id = c.req.param('id');
    const hasBody = c.req.header('content-length') !== '0' && c.req.header('content-type');
    const by = hasBody ? readActor(await readJson(c), deps.engine) : 'api';
    deps.engine.acknowledge(id, by, 'api');
    const incident = deps.store.getIncident(id);
    return c.json(incident ? toIncidentView(deps.store, incident, false) : { id });
  });

  for (const action of ['resolve', 'cancel'] as const) {
    app.post(`/api/incidents/:id/${action}`, jsonBodyLimit(deps.maxBodyBytes), async (c) => {
      const id = c.req.param('id');
      const hasBody = c.req.header('content-length') !== '0' && c.req.header('content-type');
      const by = hasBody ? readActor(await readJson(c), deps.engine) : 'api';
      if (action === 'resolve') deps.engine.resolve(id, by);
      else deps.engine.cancel(id, by);
      const incident = deps.store.getIncident(id);
      return c.json(incident ? toIncidentView(deps.store, incident, false) : { id });
    });
  }

  app.post('/api/incidents/:id/approve', jsonBodyLimit(deps.maxBodyBytes), async (c) => {
    const id = c.req.param('id');
    const body = await readJson(c);
    const stage = (body as { stage?: unknown } | null)?.stage;
    if (typeof stage !== 'string' || stage === '') {
      throw new HttpError(
        422,
        'the body must name the stage to approve, such as {"stage": "customer-notice", "by": "ilse"}',
      );
    }
    const by = readActor(body, deps.engine);
    if (by === 'api')
      throw new HttpError(422, 'an approval must say who approves: {"by": "person-id"}');
    deps.engine.approve(id, stage, by);
    const incident = deps.store.getIncident(id);
    return c.json(incident ? toIncidentView(deps.store, incident, false) : { id });
  });

  if (deps.recorder) {
    const recorder = deps.recorder;
    app.get('/sandbox/messages', (c) => c.json({ messages: recorder.list() }));
  }

  return app;
}

function requestLogger(log: Logger): MiddlewareHandler<Env> {
  return async (c, next) => {
    const requestId = c.req.header('x-request-id')?.slice(0, 64) ?? randomUUID();
    const requestLog = log.child({ requestId });
    c.set('requestId', requestId);
    c.set('log', requestLog);
    const started = performance.now();

    await next();

    const durationMs = Math.round(performance.now() - started);
    const fields = {
      method: c.req.method,
      path: c.req.routePath,
      status: c.res.status,
      durationMs,
    };
    if (c.res.status >= 500) requestLog.error(fields, 'request completed');
    else requestLog.info(fields, 'request completed');
    c.header('x-request-id', requestId);
  };
}

function bearerAuth(token: string): MiddlewareHandler<Env> {
  const expected = digest(token);
  return async (c, next) => {
    const header = c.req.header('authorization') ?? '';
    const match = /^Bearer\s+(.+)$/i.exec(header);
    // Compare digests so the comparison takes the same time whatever the length.
    if (!match?.[1] || !timingSafeEqual(digest(match[1].trim()), expected)) {
      c.header('www-authenticate', 'Bearer');
      throw new HttpError(401, 'the request was not authenticated');
    }
    await next();
  };
}

function jsonBodyLimit(maxBytes: number): MiddlewareHandler<Env> {
  return bodyLimit({
    maxSize: maxBytes,
    onError: () => {
      throw new HttpError(413, `the body is larger than ${maxBytes} bytes`);
    },
  });
}

async function readJson(c: Context<Env>): Promise<unknown> {
  return (await readJsonText(c)).value;
}

/** The body as received (signatures cover these bytes) and parsed. */
async function readJsonText(c: Context<Env>): Promise<{ text: string; value: unknown }> {
  const type = c.req.header('content-type') ?? '';
  if (!/^application\/json\s*(;|$)/i.test(type)) {
    throw new HttpError(
      415,
      `content type must be application/json, not "${type.slice(0, 60) || 'none'}"`,
    );
  }
  const text = await c.req.text();
  try {
    return { text, value: JSON.parse(text) as unknown };
  } catch (cause) {
    throw new HttpError(
      400,
      `the body is not valid JSON: ${(cause as Error).message.slice(0, 120)}`,
      { cause },
    );
  }
}

/** Sources with a configured secret must sign their bodies; a failure says only that. */
function checkSignature(
  source: string,
  text: string,
  c: Context<Env>,
  secrets: WebhookSecrets,
): void {
  const secret =
    source === 'pagerduty' ? secrets.pagerduty : source === 'grafana' ? secrets.grafana : undefined;
  if (secret === undefined) return;
  // The caller learns only that it failed; the log says why, for whoever set the sender up.
  const refuse = (reason: string): never => {
    c.get('log').warn({ source, reason }, 'webhook signature refused');
    throw new HttpError(401, 'the request was not authenticated');
  };
  if (source === 'pagerduty') {
    const header = c.req.header('x-pagerduty-signature');
    if (!header) refuse('missing');
    if (!verifyPagerDutySignature(text, header, secret)) refuse('mismatch');
    return;
  }
  const header = c.req.header('x-grafana-alerting-signature');
  if (!header) refuse('missing');
  const timestampHeader = secrets.grafanaTimestampHeader;
  const timestamp = timestampHeader === undefined ? undefined : c.req.header(timestampHeader);
  if (timestampHeader !== undefined) {
    const seconds = /^\d{1,12}$/.test(timestamp ?? '') ? Number(timestamp) : Number.NaN;
    // Signed long ago (or in the future): a replay of a captured request, or a wrong clock.
    if (Number.isNaN(seconds)) refuse('timestamp missing');
    if (Math.abs(Date.now() - seconds * 1000) > SIGNATURE_TOLERANCE_MS) refuse('stale timestamp');
  }
  if (!verifyGrafanaSignature(text, header, secret, timestamp)) refuse('mismatch');
}

/** Who acts: `{"by": "person-id"}`, or the API itself when the body names nobody. */
/**
 * Reads a Twilio form post and checks its `X-Twilio-Signature` over the URL Twilio called: the
 * public base URL, this path and the query.
 */
async function readSignedTwilioForm(
  c: Context<Env>,
  twilio: { authToken: string; publicUrl: () => string },
): Promise<Record<string, string | string[]>> {
  const type = c.req.header('content-type') ?? '';
  if (!type.startsWith('application/x-www-form-urlencoded')) {
    throw new HttpError(415, 'Twilio posts application/x-www-form-urlencoded; send that');
  }
  const params = readTwilioForm(await c.req.text());
  const url = `${twilio.publicUrl().replace(/\/$/, '')}${c.req.path}${new URL(c.req.url).search}`;
  if (!isTwilioSignatureValid(twilio.authToken, url, params, c.req.header('x-twilio-signature'))) {
    throw new HttpError(
      403,
      'X-Twilio-Signature does not match; check the auth token and that server.publicUrl is the URL Twilio calls',
    );
  }
  return params;
}

/** A Twilio status callback as a receipt, or undefined for states that change nothing. */
function toTwilioReceipt(params: Record<string, string | string[]>): DeliveryReceipt | undefined {
  const field = (name: string): string | undefined => {
    const value = params[name];
    return typeof value === 'string' ? value : value?.[0];
  };
  const sid = field('MessageSid') ?? field('SmsSid');
  const state = field('MessageStatus') ?? field('SmsStatus');
  if (!sid || !state) {
    throw new HttpError(422, 'a Twilio status callback needs MessageSid and MessageStatus');
  }
  const status =
    state === 'delivered'
      ? 'delivered'
      : state === 'read'
        ? 'read'
        : state === 'undelivered' || state === 'failed'
          ? 'failed'
          : undefined;
  if (!status) return undefined;
  const receipt: DeliveryReceipt = {
    provider: 'twilio',
    providerId: sid,
    status,
    providerStatus: state,
    at: new Date().toISOString(),
  };
  const errorCode = field('ErrorCode');
  if (errorCode) receipt.errorCode = errorCode;
  return receipt;
}

async function readVonageBody(c: Context<Env>): Promise<Record<string, string>> {
  const type = c.req.header('content-type') ?? '';
  if (type.startsWith('application/x-www-form-urlencoded')) {
    return Object.fromEntries(new URLSearchParams(await c.req.text()));
  }
  const value = await readJson(c);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new HttpError(422, 'a Vonage receipt is a JSON object');
  }
  return Object.fromEntries(
    Object.entries(value as Record<string, unknown>).map(([key, field]) => [key, String(field)]),
  );
}

/**
 * A Vonage receipt as a delivery receipt, or undefined for states that change nothing
 * (accepted, buffered, unknown). Every part's receipt names the outbox row by `client-ref`.
 */
function toVonageReceipt(
  params: Record<string, string>,
  store: IncidentStore,
): DeliveryReceipt | undefined {
  const state = params.status;
  const partId = params.messageId;
  if (!state || !partId) throw new HttpError(422, 'a Vonage receipt needs status and messageId');
  const status =
    state === 'delivered'
      ? 'delivered'
      : state === 'failed' || state === 'rejected' || state === 'expired'
        ? 'failed'
        : undefined;
  if (!status) return undefined;
  const ref = Number(params['client-ref']);
  const referenced = Number.isSafeInteger(ref) ? store.getMessage(ref) : undefined;
  // Only an SMS that Vonage took (its ids are hex, Twilio's start with SM) can be named so.
  const row =
    referenced?.channel === 'sms' && /^[0-9A-Fa-f]{8,}$/.test(referenced.providerId ?? '')
      ? referenced
      : undefined;
  const receipt: DeliveryReceipt = {
    provider: 'vonage',
    providerId: row?.providerId ?? partId,
    status,
    providerStatus: state,
    at: new Date().toISOString(),
  };
  const errorCode = params['err-code'];
  if (errorCode && errorCode !== '0') receipt.errorCode = errorCode;
  return receipt;
}

function safeEqual(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** WhatsApp change values: statuses move messages on; messages open windows and may acknowledge. */
function handleWhatsAppChanges(
  payload: unknown,
  deps: AppDeps,
): { statuses: number; messages: number } {
  // Read the whole delivery first: a malformed part refuses it before anything is stored.
  const { statuses, messages } = readWhatsAppChanges(payload);
  const now = new Date().toISOString();
  for (const status of statuses) {
    const receipt: DeliveryReceipt = {
      provider: 'whatsapp',
      providerId: status.id,
      status: status.mapped,
      providerStatus: status.state,
      at: now,
    };
    if (status.errorCode !== undefined) receipt.errorCode = status.errorCode;
    const messageId = deps.store.recordReceipt(receipt);
    if (messageId !== undefined && status.mapped === 'failed') deps.engine.fallBack(messageId);
  }
  for (const message of messages) {
    deps.store.touchReplyWindow('whatsapp', message.address, now);
    if (message.text)
      deps.engine.handleReply({
        channel: 'whatsapp',
        address: message.address,
        text: message.text,
      });
  }
  return { statuses: statuses.length, messages: messages.length };
}

interface WhatsAppStatus {
  id: string;
  state: string;
  mapped: 'delivered' | 'read' | 'failed';
  errorCode?: string;
}

/**
 * The statuses and messages of a WhatsApp webhook delivery, checked field by field; 422 for
 * anything not shaped as Meta documents it.
 */
function readWhatsAppChanges(payload: unknown): {
  statuses: WhatsAppStatus[];
  messages: { address: string; text: string | undefined }[];
} {
  const refuse = (where: string): never => {
    throw new HttpError(422, `a WhatsApp webhook has ${where}; see Meta's webhook payload`);
  };
  const isObject = (value: unknown): value is Record<string, unknown> =>
    value !== null && typeof value === 'object' && !Array.isArray(value);
  const listAt = (value: unknown, where: string): unknown[] => {
    if (value === undefined) return [];
    return Array.isArray(value) ? value : refuse(`${where} that is not a list`);
  };
  if (!isObject(payload) || !Array.isArray(payload.entry)) refuse('no entry: [...]');
  const statuses: WhatsAppStatus[] = [];
  const messages: { address: string; text: string | undefined }[] = [];
  for (const entry of (payload as { entry: unknown[] }).entry) {
    if (!isObject(entry)) refuse('an entry that is not an object');
    for (const change of listAt((entry as Record<string, unknown>).changes, 'changes')) {
      if (!isObject(change)) refuse('a change that is not an object');
      const value = (change as Record<string, unknown>).value;
      if (value === undefined) continue;
      if (!isObject(value)) refuse('a change value that is not an object');
      const fields = value as Record<string, unknown>;
      for (const status of listAt(fields.statuses, 'statuses')) {
        if (
          !isObject(status) ||
          typeof status.id !== 'string' ||
          typeof status.status !== 'string'
        ) {
          refuse('a status without a string id and status');
        }
        const {
          id,
          status: state,
          errors,
        } = status as { id: string; status: string; errors?: unknown };
        const mapped =
          state === 'delivered' || state === 'read'
            ? state
            : state === 'failed'
              ? 'failed'
              : undefined;
        if (!mapped) continue;
        const first = Array.isArray(errors) && isObject(errors[0]) ? errors[0].code : undefined;
        statuses.push({
          id,
          state,
          mapped,
          ...(typeof first === 'number' || typeof first === 'string'
            ? { errorCode: String(first) }
            : {}),
        });
      }
      for (const message of listAt(fields.messages, 'messages')) {
        if (
          !isObject(message) ||
          typeof message.from !== 'string' ||
          !/^\d{6,15}$/.test(message.from)
        ) {
          refuse('a message without the sender number in from');
        }
        const item = message as Record<string, unknown>;
        const text = [
          isObject(item.text) ? item.text.body : undefined,
          isObject(item.button) ? item.button.payload : undefined,
          isObject(item.button) ? item.button.text : undefined,
          isObject(item.interactive) && isObject(item.interactive.button_reply)
            ? item.interactive.button_reply.title
            : undefined,
        ].find((candidate): candidate is string => typeof candidate === 'string');
        messages.push({ address: `+${String(item.from)}`, text });
      }
    }
  }
  return { statuses, messages };
}

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (character) => `&#${character.charCodeAt(0)};`);
}

/** Who does it: a person of the directory, so the audit names people by id, never by address. */
function readActor(body: unknown, engine: Engine): string {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new HttpError(422, 'the body must be a JSON object such as {"by": "ada"}');
  }
  const by = (body as { by?: unknown }).by;
  if (by === undefined) return 'api';
  if (typeof by !== 'string' || !/^[a-z0-9][a-z0-9._-]{0,62}$/.test(by)) {
    throw new HttpError(
      422,
      '"by" must be a person id from the directory: lower-case letters, digits, ".", "_" or "-"',
    );
  }
  if (!engine.hasPerson(by)) {
    throw new HttpError(422, `no person has id "${by}" in the directory; give a directory id`);
  }
  return by;
}

function readVariables(value: unknown): Record<string, string | number | boolean> {
  if (value === undefined) return {};
  const isRecord = value !== null && typeof value === 'object' && !Array.isArray(value);
  const entries = isRecord ? Object.entries(value) : [];
  if (
    !isRecord ||
    entries.some(([, item]) => !['string', 'number', 'boolean'].includes(typeof item))
  ) {
    throw new HttpError(422, '"variables" must be an object of strings, numbers and booleans');
  }
  return Object.fromEntries(entries);
}

function toErrorResponse(error: Error, c: Context<Env>): Response {
  if (error instanceof HttpError) {
    c.get('log').info({ status: error.status }, 'request rejected');
    return c.json({ error: error.message }, error.status);
  }

  const status = error instanceof TocsinError ? CLIENT_STATUS_BY_CODE[error.code] : undefined;
  if (status && error instanceof TocsinError) {
    c.get('log').info({ status, code: error.code }, 'request rejected');
    return c.json({ error: error.message, code: error.code }, status);
  }

  const requestId = c.get('requestId');
  c.get('log').error({ err: error }, 'request failed');
  return c.json({ error: 'internal error', requestId }, 500);
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
