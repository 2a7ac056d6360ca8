import { createHmac, randomBytes } from 'node:crypto';

import { Hono } from 'hono';
import type { MiddlewareHandler } from 'hono';

import type { MessageRecorder } from './recorder.js';

/** What the WhatsApp stand-in accepts, and where it posts status webhooks. */
export interface WhatsAppStandInOptions {
  accessToken: string;
  phoneNumberId: string;
  recorder: MessageRecorder;
  /** Numbers (digits only) whose 24-hour window is open; free text to others fails 131047. */
  openWindows: Set<string>;
  /** Where the business's webhook is, and the app secret that signs what is posted there. */
  webhook?: () => { url: string; appSecret: string } | undefined;
  /** Runs before each send, to make the faults real providers and networks make. */
  faults?: MiddlewareHandler;
}

/**
 * A stand-in for the WhatsApp Business Cloud API: `POST /{version}/{phone-number-id}/messages`
 * with a bearer token and a JSON body, answering as Meta does (200 with a wamid, or the Graph
 * error envelope), refusing free text outside the 24-hour window with 131047, and posting
 * signed `sent` and `delivered` status webhooks.
 */
export function createWhatsAppStandIn(options: WhatsAppStandInOptions): Hono {
  const app = new Hono();
  const sendPath = '/:version/:phoneNumberId/messages';

  if (options.faults) app.post(sendPath, options.faults);
  app.post(sendPath, async (c) => {
    if (c.req.header('authorization') !== `Bearer ${options.accessToken}`) {
      return c.json(graphError(190, 'Error validating access token', 'OAuthException'), 401);
    }
    if (c.req.param('phoneNumberId') !== options.phoneNumberId) {
      return c.json(graphError(100, 'Unsupported post request', 'GraphMethodException'), 400);
    }
    let body: Record<string, unknown>;
    try {
      body = await c.req.json<Record<string, unknown>>();
    } catch {
      return c.json(graphError(100, 'Invalid parameter', 'OAuthException'), 400);
    }
    const to = typeof body.to === 'string' ? body.to : '';
    if (body.messaging_product !== 'whatsapp' || !/^\d{7,15}$/.test(to)) {
      return c.json(graphError(131009, 'Parameter value is not valid', 'OAuthException'), 400);
    }

    let recorded: string;
    if (body.type === 'text') {
      const text = (body.text as { body?: unknown } | undefined)?.body;
      if (typeof text !== 'string' || text.length === 0 || text.length > 4096) {
        return c.json(graphError(131009, 'Parameter value is not valid', 'OAuthException'), 400);
      }
      if (!options.openWindows.has(to)) {
        return c.json(
          graphError(131047, 'Re-engagement message', 'OAuthException', {
            messaging_product: 'whatsapp',
            details:
              'Message failed to send because more than 24 hours have passed since the customer last replied to this number.',
          }),
          400,
        );
      }
      recorded = text;
    } else if (body.type === 'template') {
      const template = body.template as
        | {
            name?: unknown;
            language?: { code?: unknown };
            components?: { parameters?: { text?: unknown }[] }[];
          }
        | undefined;
      if (typeof template?.name !== 'string' || typeof template.language?.code !== 'string') {
        return c.json(graphError(131008, 'Required parameter is missing', 'OAuthException'), 400);
      }
      const parameters = (template.components ?? [])
        .flatMap((component) => component.parameters ?? [])
        .map((parameter) => String(parameter.text));
      recorded = `template ${template.name} (${template.language.code}): ${parameters.join(' | ')}`;
    } else {
      return c.json(graphError(100, 'Invalid parameter', 'OAuthException'), 400);
    }

    const id = `wamid.${randomBytes(24).toString('base64url')}`;
    options.recorder.record({
      channel: 'whatsapp',
      provider: 'whatsapp-cloud',
      providerId: id,
      to: `+${to}`,
      from: options.phoneNumberId,
      subject: null,
      body: recorded,
    });
    const webhook = options.webhook?.();
    if (webhook) setTimeout(() => void postStatuses(webhook, options.phoneNumberId, id, to), 50);
    return c.json({
      messaging_product: 'whatsapp',
      contacts: [{ input: to, wa_id: to }],
      messages: [{ id }],
    });
  });

  // A person writing to the business, for demos and tests: opens their window and posts the
  // signed inbound webhook Meta would.
  app.post('/sandbox/whatsapp/inbound', async (c) => {
    const { from, text } = await c.req.json<{ from?: unknown; text?: unknown }>();
    const digits = typeof from === 'string' ? from.replace(/^\+/, '') : '';
    if (!/^\d{7,15}$/.test(digits) || typeof text !== 'string') {
      return c.json({ error: 'give {"from": "+4915...", "text": "ACK 4821"}' }, 422);
    }
    options.openWindows.add(digits);
    const webhook = options.webhook?.();
    if (webhook) {
      await postSigned(webhook, {
        messaging_product: 'whatsapp',
        metadata: { display_phone_number: '15550783881', phone_number_id: options.phoneNumberId },
        contacts: [{ profile: { name: 'Sandbox user' }, wa_id: digits }],
        messages: [
          {
            from: digits,
            id: `wamid.${randomBytes(24).toString('base64url')}`,
            timestamp: String(Math.floor(Date.now() / 1000)),
            type: 'text',
            text: { body: text },
          },
        ],
      });
    }
    return c.json({ delivered: webhook !== undefined });
  });

  return app;
}

function graphError(
  code: number,
  message: string,
  type: string,
  data?: Record<string, string>,
): Record<string, unknown> {
  return {
    error: {
      message: `(#${code}) ${message}`,
      type,
      code,
      ...(data ? { error_data: data } : {}),
      fbtrace_id: randomBytes(8).toString('base64url'),
    },
  };
}

/** Posts `sent` and `delivered` for a message, as Meta does. */
async function postStatuses(
  webhook: { url: string; appSecret: string },
  phoneNumberId: string,
  id: string,
  to: string,
): Promise<void> {
  for (const status of ['sent', 'delivered']) {
    await postSigned(webhook, {
      messaging_product: 'whatsapp',
      metadata: { display_phone_number: '15550783881', phone_number_id: phoneNumberId },
      statuses: [
        { id, status, timestamp: String(Math.floor(Date.now() / 1000)), recipient_id: to },
      ],
    });
  }
}

/** Posts one change to the business's webhook, signed with X-Hub-Signature-256. */
async function postSigned(
  webhook: { url: string; appSecret: string },
  value: Record<string, unknown>,
): Promise<void> {
  const raw = JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [{ id: '102290129340398', changes: [{ value, field: 'messages' }] }],
  });
  const signature = `sha256=${createHmac('sha256', webhook.appSecret).update(raw).digest('hex')}`;
  try {
    await fetch(webhook.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-hub-signature-256': signature },
      body: raw,
    });
  } catch {
    // Meta retries for days; the stand-in does not.
  }
}
