import { Pool } from 'undici';

import { ChannelError } from '../errors.js';
import { countSmsSegments } from '../sms/index.js';
import { transportError } from './transport-error.js';
import type { ChannelAdapter, OutgoingMessage, SendReceipt } from './channel.js';

/** Settings of the Vonage SMS API channel, the second SMS provider. */
export interface VonageSmsConfig {
  /** Scheme, host and optional path prefix; `https://rest.nexmo.com` in production. */
  baseUrl: string;
  apiKey: string;
  apiSecret: string;
  /** The sender: a number (E.164, with or without +) or an alphanumeric sender id. */
  from: string;
  /** Where Vonage sends delivery receipts; a function when the URL is known only later. */
  callback?: string | (() => string | undefined);
  connections?: number;
}

// Vonage answers 200 for every request and says what happened in each message's status
// (../shared/specs/PROVIDERS.md §3). Throttled, internal error, too many binds, communication
// failure: worth a later try.
const RETRYABLE_STATUSES = new Set(['1', '5', '10', '13']);
// Wrong for every message of this account: credentials, a barred or unfunded account, HTTP not
// enabled, a bad signature, a sender Vonage refuses, a facility not allowed.
const CHANNEL_STATUSES = new Set(['4', '8', '9', '11', '14', '15', '19']);
// About the number: barred, or not reachable.
const RECIPIENT_STATUSES = new Set(['7', '17']);

/**
 * SMS over the Vonage SMS API: a form POST to `{baseUrl}/sms/json` with the key and secret in
 * the body. Text outside GSM-7 goes as `type=unicode`, which Vonage needs to be told. Each part
 * of a long message gets its own id; the first one names the message, and `client-ref` carries
 * the outbox row so that receipts of every part find it.
 */
export function createVonageSmsChannel(config: VonageSmsConfig): ChannelAdapter {
  const base = new URL(config.baseUrl);
  const path = `${base.pathname.replace(/\/$/, '')}/sms/json`;
  const pool = new Pool(base.origin, { connections: config.connections ?? 64 });
  const callback = (): string | undefined =>
    typeof config.callback === 'function' ? config.callback() : config.callback;

  async function send(message: OutgoingMessage, signal: AbortSignal): Promise<SendReceipt> {
    const form = new URLSearchParams({
      api_key: config.apiKey,
      api_secret: config.apiSecret,
      from: config.from.replace(/^\+/, ''),
      to: message.address.replace(/^\+/, ''),
      text: message.body,
      type: countSmsSegments(message.body).encoding === 'GSM-7' ? 'text' : 'unicode',
      'client-ref': String(message.id),
    });
    const receiptUrl = callback();
    if (receiptUrl) {
      form.set('status-report-req', '1');
      form.set('callback', receiptUrl);
    }

    let response;
    try {
      response = await pool.request({
        method: 'POST',
        path,
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
        },
        body: form.toString(),
        signal,
      });
    } catch (cause) {
      throw transportError('Vonage', base.origin, cause);
    }
    const text = await response.body.text();
    if (response.statusCode !== 200) {
      // Outside its documented protocol: a gateway in front of Vonage answered.
      const retryable = response.statusCode === 429 || response.statusCode >= 500;
      throw new ChannelError(
        retryable ? 'E_CHANNEL_UNAVAILABLE' : 'E_CHANNEL_REJECTED',
        `Vonage answered HTTP ${response.statusCode}`,
        {
          retryable,
          status: response.statusCode,
          ambiguous: response.statusCode >= 500 && response.statusCode !== 503,
          ...(response.statusCode === 401 ? { scope: 'channel' as const } : {}),
        },
      );
    }
    const parts = readParts(text);
    if (parts === undefined) {
      throw new ChannelError('E_CHANNEL_UNAVAILABLE', 'Vonage answered 200 without messages', {
        retryable: true,
        ambiguous: true,
        status: 200,
      });
    }
    const failed = parts.find((part) => part.status !== '0');
    const first = parts[0];
    if (failed === undefined && first?.messageId) {
      return { providerId: first.messageId, receiptExpected: receiptUrl !== undefined };
    }
    throw toChannelError(failed?.status ?? 'none', parts.length, failed !== first);
  }

  return { kind: 'sms', provider: 'vonage', send, close: () => pool.close() };
}

interface VonagePart {
  status: string;
  messageId: string | undefined;
}

function readParts(text: string): VonagePart[] | undefined {
  try {
    const parsed = JSON.parse(text) as { messages?: unknown };
    if (!Array.isArray(parsed.messages) || parsed.messages.length === 0) return undefined;
    return (parsed.messages as Record<string, unknown>[]).map((part) => ({
      status: typeof part.status === 'string' ? part.status : String(part.status),
      messageId: typeof part['message-id'] === 'string' ? part['message-id'] : undefined,
    }));
  } catch {
    return undefined;
  }
}

function toChannelError(status: string, parts: number, partlySent: boolean): ChannelError {
  // A long message refused after its first parts went out: sending it again repeats those.
  const retryable = RETRYABLE_STATUSES.has(status) && !partlySent;
  const scope = CHANNEL_STATUSES.has(status)
    ? 'channel'
    : RECIPIENT_STATUSES.has(status)
      ? 'recipient'
      : undefined;
  const what = retryable
    ? 'asked to retry'
    : scope === 'channel'
      ? 'rejected the account or sender'
      : 'rejected the message';
  return new ChannelError(
    retryable ? 'E_CHANNEL_UNAVAILABLE' : 'E_CHANNEL_REJECTED',
    `Vonage ${what}: status ${status}${partlySent ? ` after some of ${parts} parts were sent` : ''}`,
    {
      retryable,
      status: 200,
      providerCode: status,
      ...(scope === undefined || retryable ? {} : { scope }),
    },
  );
}
