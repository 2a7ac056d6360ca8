import { Hono } from 'hono';

import { checkWebhookSignature, SIGNATURE_HEADERS } from '../../src/index.js';
import type { MessageRecorder } from './recorder.js';

/** Options of the chat stand-in: where it records, and the JSON webhooks' signing key. */
export interface ChatStandInOptions {
  recorder: MessageRecorder;
  secret: string;
}

/**
 * Stand-ins for incoming chat webhooks under `/chat/{format}/{room}`: Slack's (a JSON `text`,
 * answered `ok`, `invalid_payload` otherwise), a Teams workflow's (a message with an Adaptive
 * Card, answered 202) and Tocsin's signed JSON (refused with 401 unless the signature and its
 * time hold).
 */
export function createChatStandIn(options: ChatStandInOptions): Hono {
  const app = new Hono();
  app.post('/chat/:format/:room', async (c) => {
    const room = c.req.param('room');
    const raw = await c.req.text();
    let payload: Record<string, unknown>;
    try {
      payload = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      return c.text('invalid_payload', 400);
    }
    const record = (body: string): void => {
      options.recorder.record({
        channel: 'chat',
        provider: `chat-${c.req.param('format')}`,
        providerId: `${room}:${options.recorder.list().length + 1}`,
        to: room,
        from: 'tocsin',
        subject: null,
        body,
      });
    };
    switch (c.req.param('format')) {
      case 'slack': {
        if (typeof payload.text !== 'string' || payload.text === '') {
          return c.text('no_text', 400);
        }
        record(payload.text);
        return c.text('ok');
      }
      case 'teams': {
        const text = readAdaptiveCardText(payload);
        if (text === undefined) return c.json({ error: 'expected an Adaptive Card message' }, 400);
        record(text);
        return c.body(null, 202);
      }
      case 'json': {
        const check = checkWebhookSignature(
          options.secret,
          raw,
          c.req.header(SIGNATURE_HEADERS.timestamp),
          c.req.header(SIGNATURE_HEADERS.signature),
          Math.floor(Date.now() / 1000),
        );
        if (check !== 'valid') return c.json({ error: `signature ${check}` }, 401);
        if (typeof payload.text !== 'string') return c.json({ error: 'text missing' }, 422);
        record(payload.text);
        return c.body(null, 204);
      }
      default:
        return c.text('no such webhook', 404);
    }
  });
  return app;
}

function readAdaptiveCardText(payload: Record<string, unknown>): string | undefined {
  if (payload.type !== 'message' || !Array.isArray(payload.attachments)) return undefined;
  const [attachment] = payload.attachments as {
    contentType?: string;
    content?: { type?: string; body?: { type?: string; text?: string }[] };
  }[];
  if (attachment?.contentType !== 'application/vnd.microsoft.card.adaptive') return undefined;
  if (attachment.content?.type !== 'AdaptiveCard') return undefined;
  const texts = (attachment.content.body ?? [])
    .filter((block) => block.type === 'TextBlock' && typeof block.text === 'string')
    .map((block) => block.text ?? '');
  return texts.length > 0 ? texts.join('\n') : undefined;
}
