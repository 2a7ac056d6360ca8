import type { AddressInfo } from 'node:net';

import { serve } from '@hono/node-server';
import type { ServerType } from '@hono/node-server';
import { Hono } from 'hono';

import { SANDBOX_CREDENTIALS } from '../config.js';
import { MessageRecorder } from './recorder.js';
import { startSmtpStandIn } from './smtp-stand-in.js';
import { createTwilioStandIn } from './twilio-stand-in.js';
import { createWhatsAppStandIn } from './whatsapp-stand-in.js';

/** The running stand-ins and how to reach them. */
export interface Sandbox {
  recorder: MessageRecorder;
  /** Base URL of the Twilio API stand-in, also serving `GET /sandbox/messages`. */
  httpUrl: string;
  smtp: { host: string; port: number };
  /** Where the WhatsApp stand-in posts its webhooks; the service sets it once it listens. */
  whatsappWebhook: { url?: string };
  close(): Promise<void>;
}

/** Starts the provider stand-ins: Twilio's Messages API over HTTP, and an SMTP server. */
export async function startSandbox(
  options: { host?: string; port?: number; smtpPort?: number } = {},
): Promise<Sandbox> {
  const host = options.host ?? '127.0.0.1';
  const recorder = new MessageRecorder();
  const smtp = await startSmtpStandIn({
    recorder,
    host,
    ...(options.smtpPort === undefined ? {} : { port: options.smtpPort }),
  });

  const app = new Hono();
  app.route(
    '/',
    createTwilioStandIn({
      accountSid: SANDBOX_CREDENTIALS.accountSid,
      authToken: SANDBOX_CREDENTIALS.authToken,
      recorder,
    }),
  );
  const whatsappWebhook: { url?: string } = {};
  app.route(
    '/',
    createWhatsAppStandIn({
      accessToken: SANDBOX_CREDENTIALS.whatsappAccessToken,
      phoneNumberId: SANDBOX_CREDENTIALS.whatsappPhoneNumberId,
      recorder,
      openWindows: new Set(),
      webhook: () =>
        whatsappWebhook.url === undefined
          ? undefined
          : { url: whatsappWebhook.url, appSecret: SANDBOX_CREDENTIALS.whatsappAppSecret },
    }),
  );
  app.get('/sandbox/messages', (c) => c.json({ messages: recorder.list() }));

  const server = await new Promise<ServerType>((resolve) => {
    const started = serve({ fetch: app.fetch, hostname: host, port: options.port ?? 0 }, () =>
      resolve(started),
    );
  });
  const address = server.address() as AddressInfo;

  return {
    recorder,
    httpUrl: `http://${host}:${address.port}`,
    smtp: { host, port: smtp.port },
    whatsappWebhook,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await smtp.close();
    },
  };
}
