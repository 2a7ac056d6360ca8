import { Pool } from 'undici';

import { ChannelError } from '../errors.js';
import { transportError } from './transport-error.js';
import type { ChannelAdapter, OutgoingMessage, SendReceipt } from './channel.js';

/** Settings of the Twilio Messages API channel. */
export interface TwilioSmsConfig {
  /** Scheme, host and optional path prefix; `https://api.twilio.com` in production. */
  baseUrl: string;
  accountSid: string;
  authToken: string;
  from?: string;
  messagingServiceSid?: string;
  /** Where Twilio posts delivery receipts; a function when the URL is known only later. */
  statusCallback?: string | (() => string | undefined);
  connections?: number;
}

// Codes Twilio documents as "not processed, safe to retry" (20429) and server-side trouble.
const RETRYABLE_CODES = new Set([20429, 20500, 20503]);
// Codes that say the account or sender is wrong: no message on this channel can succeed.
const CHANNEL_CODES = new Set([20003, 20005, 21606, 21608, 30002]);
// Codes about the number: invalid, unreachable, a landline, opted out, a region not enabled.
const RECIPIENT_CODES = new Set([21211, 21408, 21610, 21612, 21614, 21635]);

/**
 * SMS over Twilio Programmable Messaging: a form POST to
 * `{baseUrl}/2010-04-01/Accounts/{AccountSid}/Messages.json` with HTTP basic auth.
 */
export function createTwilioSmsChannel(config: TwilioSmsConfig): ChannelAdapter {
  const base = new URL(config.baseUrl);
  const prefix = base.pathname.replace(/\/$/, '');
  const path = `${prefix}/2010-04-01/Accounts/${config.accountSid}/Messages.json`;
  const authorization = `Basic ${Buffer.from(`${config.accountSid}:${config.authToken}`).toString('base64')}`;
  const pool = new Pool(base.origin, { connections: config.connections ?? 64 });

  const statusCallback = (): string | undefined =>
    typeof config.statusCallback === 'function' ? config.statusCallback() : config.statusCallback;

  async function send(message: OutgoingMessage, signal: AbortSignal): Promise<SendReceipt> {
    const form = new URLSearchParams({ To: message.address, Body: message.body });
    if (config.messagingServiceSid) form.set('MessagingServiceSid', config.messagingServiceSid);
    else if (config.from) form.set('From', config.from);
    const callback = statusCallback();
    if (callback) form.set('StatusCallback', callback);

    let response;
    try {
      response = await pool.request({
        method: 'POST',
        path,
        headers: {
          authorization,
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
        },
        body: form.toString(),
        signal,
      });
    } catch (cause) {
      throw transportError('Twilio', base.origin, cause);
    }

    const text = await response.body.text();
    if (response.statusCode === 201 || response.statusCode === 200) {
      const sid = readField(text, 'sid');
      if (typeof sid === 'string' && sid !== '')
        return { providerId: sid, receiptExpected: callback !== undefined };
      throw new ChannelError(
        'E_CHANNEL_UNAVAILABLE',
        `Twilio answered ${response.statusCode} without a message sid`,
        {
          retryable: false,
          status: response.statusCode,
        },
      );
    }
    throw toChannelError(response.statusCode, text, response.headers['retry-after']);
  }

  /**
   * Lists the account's messages to the address sent since that day (Twilio filters by date
   * only) and keeps those with the same text created from `since` on, a minute's clock skew
   * allowed; newest first, as Twilio lists them.
   */
  async function reconcile(
    message: OutgoingMessage,
    since: Date,
    signal: AbortSignal,
  ): Promise<SendReceipt[]> {
    const earliest = since.getTime() - CLOCK_SKEW_MS;
    const query = new URLSearchParams({
      To: message.address,
      'DateSent>': new Date(earliest).toISOString().slice(0, 10),
      PageSize: '100',
    });
    let response;
    try {
      response = await pool.request({
        method: 'GET',
        path: `${path}?${query.toString()}`,
        headers: { authorization, accept: 'application/json' },
        signal,
      });
    } catch (cause) {
      throw transportError('Twilio', base.origin, cause);
    }
    const text = await response.body.text();
    if (response.statusCode !== 200) {
      throw toChannelError(response.statusCode, text, response.headers['retry-after']);
    }
    const listed = readField(text, 'messages');
    if (!Array.isArray(listed)) {
      throw new ChannelError('E_CHANNEL_UNAVAILABLE', 'Twilio listed messages without a list', {
        retryable: true,
        status: response.statusCode,
      });
    }
    return (
      (listed as Record<string, unknown>[])
        .filter(
          (entry) =>
            entry.to === message.address &&
            entry.body === message.body &&
            typeof entry.sid === 'string' &&
            Date.parse(String(entry.date_created)) >= earliest,
        )
        // A message found there was sent with the callback this adapter always adds.
        .map((entry) => ({
          providerId: String(entry.sid),
          receiptExpected: statusCallback() !== undefined,
        }))
    );
  }

  return { kind: 'sms', provider: 'twilio', send, reconcile, close: () => pool.close() };
}

const CLOCK_SKEW_MS = 60_000;

function toChannelError(status: number, text: string, retryAfter: unknown): ChannelError {
  const code = readField(text, 'code');
  const numeric = typeof code === 'number' ? code : undefined;
  const providerCode = numeric === undefined ? undefined : String(numeric);
  const retryable =
    status === 429 || status >= 500 || (numeric !== undefined && RETRYABLE_CODES.has(numeric));
  // 429 and 503 say the request was turned away; other server errors may come after the
  // message was taken.
  const ambiguous = status >= 500 && status !== 503;
  const forChannel =
    status === 401 || status === 403 || (numeric !== undefined && CHANNEL_CODES.has(numeric));
  const scope = retryable
    ? 'asked to retry'
    : forChannel
      ? 'rejected the account or sender'
      : 'rejected the message';
  const details: {
    retryable: boolean;
    status: number;
    providerCode?: string;
    retryAfterMs?: number;
    ambiguous: boolean;
    scope?: 'recipient' | 'channel';
  } = { retryable, status, ambiguous };
  if (providerCode !== undefined) details.providerCode = providerCode;
  if (!retryable && forChannel) details.scope = 'channel';
  else if (!retryable && numeric !== undefined && RECIPIENT_CODES.has(numeric))
    details.scope = 'recipient';
  // Retry-After is seconds (or an HTTP date, which Twilio does not send).
  const seconds = typeof retryAfter === 'string' ? Number(retryAfter) : Number.NaN;
  if (Number.isFinite(seconds) && seconds >= 0)
    details.retryAfterMs = Math.min(seconds, 3_600) * 1000;
  const after = typeof retryAfter === 'string' ? `; Retry-After ${retryAfter}s` : '';
  return new ChannelError(
    retryable ? 'E_CHANNEL_UNAVAILABLE' : 'E_CHANNEL_REJECTED',
    `Twilio ${scope}: HTTP ${status}, code ${providerCode ?? 'none'}${after}`,
    details,
  );
}

function readField(text: string, field: string): unknown {
  try {
    const parsed = JSON.parse(text) as unknown;
    return parsed !== null && typeof parsed === 'object'
      ? (parsed as Record<string, unknown>)[field]
      : undefined;
  } catch {
    return undefined;
  }
}
