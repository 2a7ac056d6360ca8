import { randomBytes } from 'node:crypto';

import { Hono } from 'hono';
import type { MiddlewareHandler } from 'hono';

import { countSmsSegments } from '../../src/index.js';
import type { MessageRecorder } from './recorder.js';

/** Credentials the stand-in accepts. */
export interface VonageStandInOptions {
  apiKey: string;
  apiSecret: string;
  recorder: MessageRecorder;
  /** How long after accepting a message its receipts are sent to its callback. */
  receiptDelayMs?: number;
  /** Runs before each send, to make the faults real providers and networks make. */
  faults?: MiddlewareHandler;
}

/** A number the stand-in takes but cannot deliver to: each part's receipt says failed. */
export const VONAGE_UNDELIVERABLE_NUMBER = '15005550003';

/**
 * A stand-in for the Vonage SMS API: `POST /sms/json` with the key and secret in a form or JSON
 * body, answering 200 with one entry per part of the message, or with an error status in the
 * body (Vonage answers 200 to errors too). Receipts go to `callback`, one per part, as a JSON
 * POST in Vonage's delivery-receipt fields.
 */
export function createVonageStandIn(options: VonageStandInOptions): Hono {
  const app = new Hono();
  if (options.faults) app.post('/sms/json', options.faults);
  app.post('/sms/json', async (c) => {
    const type = c.req.header('content-type') ?? '';
    const raw = await c.req.text();
    const params = type.startsWith('application/json')
      ? readJsonParams(raw)
      : Object.fromEntries(new URLSearchParams(raw));
    if (params === undefined) return c.json(vonageError('3', 'Invalid JSON body'));
    if (params.api_key !== options.apiKey || params.api_secret !== options.apiSecret) {
      return c.json(vonageError('4', 'Bad Credentials'));
    }
    const { from, to, text } = params;
    if (!from) return c.json(vonageError('2', 'Missing from param'));
    if (!to) return c.json(vonageError('2', 'Missing to param'));
    if (!text) return c.json(vonageError('2', 'Missing text param'));
    // Vonage wants the number without a plus, in international form.
    if (!/^[1-9]\d{6,14}$/.test(to)) return c.json(vonageError('3', 'Invalid to address'));
    const { encoding, segments } = countSmsSegments(text);
    // Non-GSM text sent as type=text reaches the phone as question marks: refuse it here, so a
    // client that forgets type=unicode shows up in tests.
    if (encoding === 'UCS-2' && params.type !== 'unicode') {
      return c.json(vonageError('6', 'Invalid Message: text needs type=unicode'));
    }

    const parts = Array.from({ length: Math.max(1, segments) }, () =>
      randomBytes(8).toString('hex').toUpperCase(),
    );
    options.recorder.record({
      channel: 'sms',
      provider: 'vonage',
      providerId: parts[0] ?? '',
      to: `+${to}`,
      from,
      subject: null,
      body: text,
    });
    const callback = params.callback;
    if (callback && params['status-report-req'] !== '0') {
      const receipt = { to, from, parts, clientRef: params['client-ref'], apiKey: options.apiKey };
      setTimeout(() => void postReceipts(callback, receipt), options.receiptDelayMs ?? 50);
    }
    return c.json({
      'message-count': String(parts.length),
      messages: parts.map((id) => ({
        to,
        'message-id': id,
        status: '0',
        'remaining-balance': '15.53590000',
        'message-price': '0.03330000',
        network: '23410',
        ...(params['client-ref'] ? { 'client-ref': params['client-ref'] } : {}),
      })),
    });
  });
  return app;
}

function readJsonParams(raw: string): Record<string, string> | undefined {
  try {
    const parsed = JSON.parse(raw) as unknown;
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
    return Object.fromEntries(
      Object.entries(parsed as Record<string, unknown>).map(([key, value]) => [key, String(value)]),
    );
  } catch {
    return undefined;
  }
}

/** Vonage's error body: one message entry with the status and its text, HTTP 200. */
export function vonageError(status: string, text: string): Record<string, unknown> {
  return { 'message-count': '1', messages: [{ status, 'error-text': text }] };
}

/** One receipt per part, as Vonage sends them: delivered, or failed with an error code. */
async function postReceipts(
  callback: string,
  message: {
    to: string;
    from: string;
    parts: string[];
    clientRef: string | undefined;
    apiKey: string;
  },
): Promise<void> {
  const failed = message.to === VONAGE_UNDELIVERABLE_NUMBER;
  const now = new Date();
  const timestamp = now.toISOString().slice(0, 19).replace('T', ' ');
  const scts = timestamp.replace(/[-: ]/g, '').slice(2, 12);
  for (const messageId of message.parts) {
    const receipt: Record<string, string> = {
      msisdn: message.to,
      to: message.from,
      'network-code': '23410',
      messageId,
      price: '0.03330000',
      status: failed ? 'failed' : 'delivered',
      scts,
      'err-code': failed ? '1' : '0',
      'api-key': message.apiKey,
      'message-timestamp': timestamp,
    };
    if (message.clientRef) receipt['client-ref'] = message.clientRef;
    try {
      await fetch(callback, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(receipt),
      });
    } catch {
      // A receipt URL that does not answer loses its receipt, here as at Vonage.
    }
  }
}
