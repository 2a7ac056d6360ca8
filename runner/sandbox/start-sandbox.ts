import type { AddressInfo } from 'node:net';

import { serve } from '@hono/node-server';
import type { ServerType } from '@hono/node-server';
import { Hono } from 'hono';

import { SANDBOX_CREDENTIALS } from '../config.js';
import { createChatStandIn } from './chat-stand-in.js';
import { injectFaults, seededRandom } from './faults.js';
import type { FaultAnswer, FaultCounts, FaultOptions, RefusalKind } from './faults.js';
import { MessageRecorder } from './recorder.js';
import { startSmtpStandIn } from './smtp-stand-in.js';
import { createTwilioStandIn } from './twilio-stand-in.js';
import type { ReceiptFault } from './twilio-stand-in.js';
import { createVonageStandIn, vonageError } from './vonage-stand-in.js';
import { createWhatsAppStandIn } from './whatsapp-stand-in.js';

/** The running stand-ins and how to reach them. */
export interface Sandbox {
  recorder: MessageRecorder;
  /** Base URL of the Twilio API stand-in, also serving `GET /sandbox/messages`. */
  httpUrl: string;
  smtp: { host: string; port: number };
  /** Where the WhatsApp stand-in posts its webhooks; the service sets it once it listens. */
  whatsappWebhook: { url?: string };
  /** What the fault injector did so far, per kind (all zero without faults). */
  faults: {
    sends: Record<'twilio' | 'vonage' | 'whatsapp', FaultCounts>;
    receipts: Record<ReceiptFault, number>;
  };
  close(): Promise<void>;
}

/** How the stand-ins misbehave, for tests and drills of bad days. */
export interface SandboxFaults extends FaultOptions {
  /** Share of delivery receipts that come late, fail (undelivered) or never come, 0 to 1. */
  receiptRate?: number;
}

/**
 * Starts the provider stand-ins: Twilio's Messages API, the Vonage SMS API and WhatsApp's Cloud
 * API over one HTTP server, and an SMTP server.
 */
export async function startSandbox(
  options: { host?: string; port?: number; smtpPort?: number; faults?: SandboxFaults } = {},
): Promise<Sandbox> {
  const host = options.host ?? '127.0.0.1';
  const recorder = new MessageRecorder();
  const faultOptions = options.faults ?? { rate: 0, seed: 1 };
  // Each stand-in its own sequence, so one provider's traffic does not move the other's faults.
  const twilioFaults = injectFaults(faultOptions, twilioRefusal);
  const whatsappFaults = injectFaults(
    { ...faultOptions, seed: faultOptions.seed + 1 },
    graphRefusal,
  );
  const vonageFaults = injectFaults(
    { ...faultOptions, seed: faultOptions.seed + 2 },
    vonageRefusal,
  );
  const receipts = pickReceiptFaults(options.faults);
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
      ...(options.faults ? { faults: twilioFaults.middleware, receiptFault: receipts.pick } : {}),
    }),
  );
  app.route(
    '/',
    createVonageStandIn({
      apiKey: SANDBOX_CREDENTIALS.vonageApiKey,
      apiSecret: SANDBOX_CREDENTIALS.vonageApiSecret,
      recorder,
      ...(options.faults ? { faults: vonageFaults.middleware } : {}),
    }),
  );
  app.route('/', createChatStandIn({ recorder, secret: SANDBOX_CREDENTIALS.chatSecret }));
  const whatsappWebhook: { url?: string } = {};
  app.route(
    '/',
    createWhatsAppStandIn({
      accessToken: SANDBOX_CREDENTIALS.whatsappAccessToken,
      phoneNumberId: SANDBOX_CREDENTIALS.whatsappPhoneNumberId,
      recorder,
      ...(options.faults ? { faults: whatsappFaults.middleware } : {}),
      openWindows: new Set(),
      webhook: () =>
        whatsappWebhook.url === undefined
          ? undefined
          : { url: whatsappWebhook.url, appSecret: SANDBOX_CREDENTIALS.whatsappAppSecret },
    }),
  );
  app.get('/sandbox/messages', (c) => c.json({ messages: recorder.list() }));
  // Counts and times only, cheap to poll while 100,000 messages arrive.
  app.get('/sandbox/stats', (c) => {
    const nth = Number(c.req.query('nth'));
    return c.json(recorder.stats(Number.isSafeInteger(nth) && nth > 0 ? nth : undefined));
  });
  // A plain JSON target (what Apprise's json:// posts), recorded like any message.
  app.post('/sandbox/json/:target', async (c) => {
    const text = await c.req.text();
    recorder.record({
      channel: 'chat',
      provider: 'json',
      providerId: String(recorder.list().length + 1),
      to: c.req.param('target'),
      from: '',
      subject: null,
      body: text.slice(0, 1_000),
    });
    return c.body(null, 204);
  });
  const faults = {
    sends: {
      twilio: twilioFaults.counts,
      vonage: vonageFaults.counts,
      whatsapp: whatsappFaults.counts,
    },
    receipts: receipts.counts,
  };
  app.get('/sandbox/faults', (c) => c.json(faults));

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
    faults,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await smtp.close();
    },
  };
}

/** Twilio's refusals: 429 with Retry-After (20429), 500 (20500), 503 (20503). */
function twilioRefusal(kind: RefusalKind): FaultAnswer {
  const [status, code, message] =
    kind === 'throttle'
      ? ([429, 20429, 'Too Many Requests'] as const)
      : kind === 'server-error'
        ? ([500, 20500, 'Internal Server Error'] as const)
        : ([503, 20503, 'Service Unavailable'] as const);
  const body = { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status };
  return { status, body, ...(kind === 'throttle' ? { headers: { 'retry-after': '1' } } : {}) };
}

/**
 * Vonage's refusals: throttled (status 1) and internal error (5) inside a 200, as Vonage
 * answers them; a gateway's 503 in front of it.
 */
function vonageRefusal(kind: RefusalKind): FaultAnswer {
  if (kind === 'throttle')
    return { status: 200, body: vonageError('1', 'Throughput Rate Exceeded') };
  if (kind === 'server-error') return { status: 200, body: vonageError('5', 'Internal Error') };
  return { status: 503, body: { error: 'Service Unavailable' } };
}

/** Meta's refusals in the Graph envelope: 130429 throughput (400), 131000 (500), 131016 (503). */
function graphRefusal(kind: RefusalKind): FaultAnswer {
  const [status, code, message] =
    kind === 'throttle'
      ? ([400, 130429, 'Rate limit hit'] as const)
      : kind === 'server-error'
        ? ([500, 131000, 'Something went wrong'] as const)
        : ([503, 131016, 'Service unavailable'] as const);
  const error = { message: `(#${code}) ${message}`, type: 'OAuthException', code };
  return { status, body: { error: { ...error, fbtrace_id: 'AsandboxFaultTrace' } } };
}

function pickReceiptFaults(faults: SandboxFaults | undefined): {
  pick: () => ReceiptFault | undefined;
  counts: Record<ReceiptFault, number>;
} {
  const counts: Record<ReceiptFault, number> = { late: 0, failed: 0, lost: 0 };
  const rate = faults?.receiptRate ?? 0;
  // Its own sequence, so that adding receipt faults does not move the send faults of a seed.
  const random = seededRandom((faults?.seed ?? 1) ^ 0x5eed);
  const kinds: ReceiptFault[] = ['late', 'failed', 'lost'];
  const pick = (): ReceiptFault | undefined => {
    if (random() >= rate) return undefined;
    const kind = kinds[Math.floor(random() * kinds.length)] ?? 'late';
    counts[kind]++;
    return kind;
  };
  return { pick, counts };
}
