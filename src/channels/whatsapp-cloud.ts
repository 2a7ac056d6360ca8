import { Pool } from 'undici';

import { ChannelError } from '../errors.js';
import { transportError } from './transport-error.js';
import type { ChannelAdapter, OutgoingMessage, SendReceipt } from './channel.js';

/** Settings of the WhatsApp Business Cloud API channel. */
export interface WhatsAppCloudConfig {
  /** Scheme and host; `https://graph.facebook.com` in production. */
  baseUrl: string;
  /** Graph API version, such as v23.0. */
  apiVersion: string;
  /** The business phone number's id (not the number). */
  phoneNumberId: string;
  accessToken: string;
  /**
   * Whether the person wrote to the business in the last 24 hours, so free text may go out;
   * otherwise only the approved template may.
   */
  isWindowOpen?: (address: string) => boolean;
  connections?: number;
}

/** A WhatsApp message as the outbox holds it: free text and/or an approved template. */
interface WhatsAppBody {
  text: string | null;
  template: { name: string; language: string; parameters: string[] } | null;
}

// Graph API codes (../shared/specs/PROVIDERS.md §2.2): worth a later retry; wrong for every
// message of this account; the free-text window is closed.
const RETRYABLE_CODES = new Set([4, 80007, 130429, 131000, 131016, 131056]);
const CHANNEL_CODES = new Set([0, 3, 10, 190, 368, 131031]);
const WINDOW_CLOSED = 131047;
// Codes about the person: not on WhatsApp or cannot take the message, window closed, opted out
// of marketing, held back by Meta's per-user limit.
const RECIPIENT_CODES = new Set([131026, 131047, 131049, 131050, 1013]);

/**
 * WhatsApp over the Cloud API: a JSON POST to `{baseUrl}/{version}/{phone-number-id}/messages`
 * with a bearer token. Free text goes only to people whose 24-hour window is open; everyone else
 * gets the approved template, and a text refused with 131047 (window closed) is sent again as
 * the template at once.
 */
export function createWhatsAppCloudChannel(config: WhatsAppCloudConfig): ChannelAdapter {
  const base = new URL(config.baseUrl);
  const path = `${base.pathname.replace(/\/$/, '')}/${config.apiVersion}/${config.phoneNumberId}/messages`;
  const pool = new Pool(base.origin, { connections: config.connections ?? 64 });

  async function post(payload: object, signal: AbortSignal): Promise<SendReceipt> {
    let response;
    try {
      response = await pool.request({
        method: 'POST',
        path,
        headers: {
          authorization: `Bearer ${config.accessToken}`,
          'content-type': 'application/json',
        },
        body: JSON.stringify(payload),
        signal,
      });
    } catch (cause) {
      throw transportError('WhatsApp', base.origin, cause);
    }
    const text = await response.body.text();
    if (response.statusCode === 200) {
      const id = readMessageId(text);
      if (id) return { providerId: id, receiptExpected: true };
      throw new ChannelError(
        'E_CHANNEL_UNAVAILABLE',
        'WhatsApp answered 200 without a message id',
        {
          retryable: false,
          status: 200,
        },
      );
    }
    throw toChannelError(response.statusCode, text);
  }

  async function send(message: OutgoingMessage, signal: AbortSignal): Promise<SendReceipt> {
    const body = readBody(message.body);
    const to = message.address.replace(/^\+/, '');
    const common = {
      messaging_product: 'whatsapp',
      recipient_type: 'individual',
      to,
      // Echoed in status webhooks: the outbox row this send is for.
      biz_opaque_callback_data: String(message.id),
    };
    const asTemplate = (): object | undefined =>
      body.template === null
        ? undefined
        : {
            ...common,
            type: 'template',
            template: {
              name: body.template.name,
              language: { code: body.template.language },
              ...(body.template.parameters.length > 0
                ? {
                    components: [
                      {
                        type: 'body',
                        parameters: body.template.parameters.map((value) => ({
                          type: 'text',
                          text: value,
                        })),
                      },
                    ],
                  }
                : {}),
            },
          };

    const windowOpen = config.isWindowOpen?.(message.address) ?? false;
    if (body.text !== null && (windowOpen || !body.template)) {
      try {
        return await post(
          { ...common, type: 'text', text: { body: body.text, preview_url: false } },
          signal,
        );
      } catch (error) {
        const template = asTemplate();
        const closed =
          error instanceof ChannelError && error.providerCode === String(WINDOW_CLOSED);
        if (!closed || !template) throw error;
        return post(template, signal);
      }
    }
    const template = asTemplate();
    if (!template) {
      throw new ChannelError(
        'E_CHANNEL_REJECTED',
        'the WhatsApp message has neither text nor template',
        { retryable: false },
      );
    }
    return post(template, signal);
  }

  return { kind: 'whatsapp', provider: 'whatsapp-cloud', send, close: () => pool.close() };
}

function readBody(body: string): WhatsAppBody {
  try {
    const parsed = JSON.parse(body) as Partial<WhatsAppBody>;
    return { text: parsed.text ?? null, template: parsed.template ?? null };
  } catch {
    return { text: body, template: null };
  }
}

function readMessageId(text: string): string | undefined {
  try {
    const parsed = JSON.parse(text) as { messages?: { id?: unknown }[] };
    const id = parsed.messages?.[0]?.id;
    return typeof id === 'string' && id !== '' ? id : undefined;
  } catch {
    return undefined;
  }
}

function toChannelError(status: number, text: string): ChannelError {
  let code: number | undefined;
  try {
    const parsed = JSON.parse(text) as { error?: { code?: unknown } };
    code = typeof parsed.error?.code === 'number' ? parsed.error.code : undefined;
  } catch {
    code = undefined;
  }
  const retryable =
    status === 429 || status >= 500 || (code !== undefined && RETRYABLE_CODES.has(code));
  const forChannel =
    status === 401 ||
    status === 403 ||
    (code !== undefined && (CHANNEL_CODES.has(code) || (code >= 200 && code <= 299)));
  const details: {
    retryable: boolean;
    status: number;
    providerCode?: string;
    scope?: 'recipient' | 'channel';
  } = { retryable, status };
  if (code !== undefined) details.providerCode = String(code);
  if (!retryable && forChannel) details.scope = 'channel';
  else if (!retryable && code !== undefined && RECIPIENT_CODES.has(code))
    details.scope = 'recipient';
  const scope = retryable
    ? 'asked to retry'
    : forChannel
      ? 'rejected the account or token'
      : 'rejected the message';
  return new ChannelError(
    retryable ? 'E_CHANNEL_UNAVAILABLE' : 'E_CHANNEL_REJECTED',
    `WhatsApp ${scope}: HTTP ${status}, code ${code ?? 'none'}`,
    details,
  );
}
