import { Pool } from 'undici';

import { ChannelError } from '../errors.js';
import { transportError } from './transport-error.js';
import type { ChannelAdapter, OutgoingMessage, SendReceipt } from './channel.js';
import { SIGNATURE_HEADERS, webhookSignature } from './webhook-signature.js';

/** What a chat webhook expects: Slack's or Teams' incoming-webhook payload, or signed JSON. */
export type ChatWebhookFormat = 'slack' | 'teams' | 'json';

/** One room's webhook. Its URL is a secret: Slack and Teams URLs carry their token. */
export interface ChatWebhook {
  format: ChatWebhookFormat;
  url: string;
  /** For `json`: the key of the HMAC-SHA256 signature over the timestamp and the body. */
  secret?: string;
}

/** Settings of the chat channel: the rooms' webhooks by name, as directory entries name them. */
export interface ChatWebhooksConfig {
  webhooks: Readonly<Record<string, ChatWebhook>>;
  /** Seconds since the epoch, for the signature's timestamp. */
  nowS?: () => number;
  connections?: number;
}

/**
 * Posts messages to chat rooms through incoming webhooks: Slack's `{ text }` (Slack answers 200
 * `ok`), a Teams workflow's message with one Adaptive Card, or Tocsin's own JSON signed with
 * HMAC-SHA256 over `timestamp.body`. A message's address is the name of its room's webhook.
 */
export function createChatWebhooksChannel(config: ChatWebhooksConfig): ChannelAdapter {
  const pools = new Map<string, Pool>();
  const nowS = config.nowS ?? (() => Math.floor(Date.now() / 1000));
  const poolFor = (origin: string): Pool => {
    let pool = pools.get(origin);
    if (!pool) {
      pool = new Pool(origin, { connections: config.connections ?? 8 });
      pools.set(origin, pool);
    }
    return pool;
  };

  async function send(message: OutgoingMessage, signal: AbortSignal): Promise<SendReceipt> {
    const webhook = config.webhooks[message.address];
    if (!webhook) {
      throw new ChannelError(
        'E_CHANNEL_NOT_CONFIGURED',
        `no chat webhook named "${message.address}" is configured; add it under channels.chat.webhooks`,
        { retryable: false, scope: 'recipient' },
      );
    }
    const url = new URL(webhook.url);
    const body = JSON.stringify(payloadFor(webhook.format, message));
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (webhook.format === 'json' && webhook.secret !== undefined) {
      const timestamp = nowS();
      headers[SIGNATURE_HEADERS.timestamp] = String(timestamp);
      headers[SIGNATURE_HEADERS.signature] = webhookSignature(webhook.secret, timestamp, body);
    }

    let response;
    try {
      response = await poolFor(url.origin).request({
        method: 'POST',
        path: `${url.pathname}${url.search}`,
        headers,
        body,
        signal,
      });
    } catch (cause) {
      throw transportError(`chat webhook ${message.address}`, url.origin, cause);
    }
    const text = await response.body.text();
    const status = response.statusCode;
    if (status >= 200 && status < 300) {
      // Incoming webhooks keep no message id; the outbox row names the post.
      return { providerId: `${message.address}:${message.id}` };
    }
    throw toChannelError(message.address, status, text, response.headers['retry-after']);
  }

  return {
    kind: 'chat',
    provider: 'chat-webhooks',
    send,
    close: async () => {
      await Promise.all([...pools.values()].map((pool) => pool.close()));
    },
  };
}

function payloadFor(format: ChatWebhookFormat, message: OutgoingMessage): object {
  switch (format) {
    case 'slack':
      // Slack reads <...> as links and mentions (<!channel> pings everyone): values are text.
      return { text: escapeSlack(message.body) };
    case 'teams':
      return {
        type: 'message',
        attachments: [
          {
            contentType: 'application/vnd.microsoft.card.adaptive',
            content: {
              $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
              type: 'AdaptiveCard',
              version: '1.4',
              body: [{ type: 'TextBlock', text: message.body, wrap: true }],
            },
          },
        ],
      };
    case 'json':
      return {
        id: message.id,
        incidentId: message.incidentId,
        room: message.address,
        text: message.body,
      };
  }
}

function escapeSlack(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

// Slack's answers that no retry can fix: the URL's room is gone or the app may not post there.
const SLACK_ROOM_ERRORS = new Set([
  'channel_not_found',
  'channel_is_archived',
  'action_prohibited',
  'posting_to_general_channel_denied',
  'no_service',
  'invalid_token',
]);

function toChannelError(
  room: string,
  status: number,
  text: string,
  retryAfter: unknown,
): ChannelError {
  const retryable = status === 429 || status >= 500;
  const reason = text.trim().slice(0, 60);
  // 401/403/404/410 and Slack's named errors: this room's webhook is wrong, for every message.
  const roomBroken =
    [401, 403, 404, 410].includes(status) || SLACK_ROOM_ERRORS.has(reason.toLowerCase());
  const seconds = typeof retryAfter === 'string' ? Number(retryAfter) : Number.NaN;
  return new ChannelError(
    retryable ? 'E_CHANNEL_UNAVAILABLE' : 'E_CHANNEL_REJECTED',
    `chat webhook ${room} answered HTTP ${status}${/^[a-z_]+$/.test(reason) ? ` (${reason})` : ''}`,
    {
      retryable,
      status,
      ambiguous: status >= 500 && status !== 503,
      ...(Number.isFinite(seconds) && seconds >= 0
        ? { retryAfterMs: Math.min(seconds, 3_600) * 1000 }
        : {}),
      ...(!retryable && roomBroken ? { scope: 'recipient' as const } : {}),
      ...(/^[a-z_]+$/.test(reason) ? { providerCode: reason } : {}),
    },
  );
}
