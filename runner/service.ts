import { createHmac } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

import { serve } from '@hono/node-server';
import type { ServerType } from '@hono/node-server';

import {
  checkAudiences,
  createDispatcher,
  createEngine,
  createChatWebhooksChannel,
  createFailoverChannel,
  createSmtpEmailChannel,
  createTwilioSmsChannel,
  createVonageSmsChannel,
  createWhatsAppCloudChannel,
  IncidentStore,
  loadDirectory,
  loadPlaybook,
  systemClock,
  TemplateEngine,
  TocsinError,
  toIsoUtc,
} from '../src/index.js';
import type { ChannelAdapter, Directory, Engine, LoadedPlaybook, Logger } from '../src/index.js';
import { SANDBOX_CREDENTIALS } from './config.js';
import type { ServiceConfig, SmsProviderConfig } from './config.js';
import { isDeadHere, leaseHolder } from './lease.js';
import { findPlaybookFiles } from './load-playbooks.js';
import type { Sandbox } from './sandbox/start-sandbox.js';
import { createApp } from './server/app.js';

/** A running service. */
export interface Service {
  url: string;
  engine: Engine;
  store: IncidentStore;
  sandbox: Sandbox | undefined;
  /** This process's name in the writer lease. */
  holder: string;
  /** Settles when the service stops on its own: it lost the writer lease to another process. */
  stopped: Promise<TocsinError>;
  close(): Promise<void>;
}

/**
 * Starts the whole service: opens the database, loads playbooks and directory, resumes open
 * incidents, reconciles messages left in flight, starts the dispatcher, the timers and the
 * HTTP server (and the stand-ins in sandbox mode).
 */
export async function startService(config: ServiceConfig, log: Logger): Promise<Service> {
  // Read everything that can be wrong before touching the database.
  const { templates, playbooks, directory } = await loadPlan(config);
  for (const playbook of playbooks) {
    for (const problem of checkAudiences(playbook, directory)) {
      log.warn(
        { playbookId: playbook.name, code: problem.code, line: problem.location.line },
        'playbook does not fit the directory',
      );
    }
  }

  // Channels: the stand-ins in sandbox mode, the configured providers otherwise.
  // The stand-ins (an SMTP server and a mail parser among them) load only in sandbox mode.
  const sandbox = config.sandbox
    ? await (await import('./sandbox/start-sandbox.js')).startSandbox()
    : undefined;
  const channelConfig = sandbox ? toSandboxChannels(sandbox) : config.channels;
  const channels = new Map<string, ChannelAdapter>();
  // Receipts: Twilio must reach this service. The callback URL is the configured public one,
  // or, for a stand-in on this machine, the service's own address once it listens.
  let publicUrl = config.server.publicUrl;
  const smsProviders = [channelConfig.sms, channelConfig.smsFailover].filter(
    (provider): provider is SmsProviderConfig => provider !== undefined,
  );
  const receiptsUrl = (provider: SmsProviderConfig, path: string): (() => string | undefined) => {
    const reachable =
      provider.receipts !== false && (publicUrl !== undefined || isLoopback(provider.baseUrl));
    return () => (reachable && publicUrl ? `${publicUrl}${path}` : undefined);
  };
  const twilioConfig = smsProviders.find((provider) => provider.provider === 'twilio');
  const vonageConfig = smsProviders.find((provider) => provider.provider === 'vonage');
  // Vonage signs no SMS receipts unless its support enables it: the callback URL carries a
  // token only this service and Vonage know.
  const vonageToken =
    vonageConfig === undefined
      ? undefined
      : createHmac('sha256', vonageConfig.apiSecret).update('tocsin-vonage-receipts').digest('hex');
  if (smsProviders.length > 0) {
    channels.set(
      'sms',
      createFailoverChannel(
        smsProviders.map((provider) => {
          if (provider.provider === 'vonage') {
            const { provider: _kind, receipts: _receipts, ...rest } = provider;
            return createVonageSmsChannel({
              ...rest,
              callback:
                rest.callback ??
                receiptsUrl(provider, `/providers/vonage/status?token=${vonageToken ?? ''}`),
            });
          }
          const { provider: _kind, receipts: _receipts, ...rest } = provider;
          return createTwilioSmsChannel({
            ...rest,
            statusCallback:
              rest.statusCallback ?? receiptsUrl(provider, '/providers/twilio/status'),
          });
        }),
        {
          onFailover: ({ from, to, error, passedOverMs }) => {
            const fields = {
              channel: 'sms',
              from,
              to,
              errorCode: error.providerCode ?? error.code,
              ...(error.scope === undefined ? {} : { failureScope: error.scope }),
            };
            // A refused account needs a person; a throttle or a blip does not.
            if (passedOverMs === undefined)
              log.warn(fields, 'sms provider turned a message away; failing over');
            else
              log.error(
                { ...fields, passedOverMs },
                'sms provider failed for the whole channel; passing it over',
              );
          },
        },
      ),
    );
  }
  if (channelConfig.email) channels.set('email', createSmtpEmailChannel(channelConfig.email));
  if (channelConfig.chat) channels.set('chat', createChatWebhooksChannel(channelConfig.chat));
  const whatsappConfig = channelConfig.whatsapp;
  // Free text only inside the 24-hour window that the person's last message opened.
  let lastInbound: (address: string) => string | undefined = () => undefined;
  if (whatsappConfig) {
    channels.set(
      'whatsapp',
      createWhatsAppCloudChannel({
        ...whatsappConfig,
        isWindowOpen: (address) => {
          const last = lastInbound(address);
          return last !== undefined && Date.parse(last) > Date.now() - WHATSAPP_WINDOW_MS;
        },
      }),
    );
  }
  const rooms = new Set(Object.keys(channelConfig.chat?.webhooks ?? {}));
  const named = new Set<string>();
  for (const person of directory.people) if (person.chat) named.add(person.chat);
  const missingRooms = [...named].filter((room) => !rooms.has(room));
  if (missingRooms.length > 0) {
    log.warn(
      { rooms: missingRooms },
      'the directory names chat rooms that channels.chat.webhooks does not set up',
    );
  }
  warnAboutMissingChannels(
    playbooks.flatMap((playbook) =>
      Object.values(playbook.definition.audiences).flatMap((audience) => audience.channels),
    ),
    channels,
    log,
  );

  // State: open the database and build the engine, but let no time run yet.
  if (config.database !== ':memory:') mkdirSync(path.dirname(config.database), { recursive: true });
  const store = new IncidentStore(config.database);
  lastInbound = (address) => store.lastInboundAt('whatsapp', address);
  const engine = createEngine({ store, clock: systemClock, directory, log, templates });
  engine.loadPlaybooks(playbooks);
  const dispatcher = createDispatcher({
    store,
    clock: systemClock,
    channels,
    log,
    concurrency: config.dispatch.concurrency,
    sendTimeoutMs: config.dispatch.sendTimeoutMs,
    ...(config.dispatch.firstRetryAfterMs === undefined
      ? {}
      : { backoffBaseMs: config.dispatch.firstRetryAfterMs }),
    ...(config.dispatch.reconcileAfterMs === undefined
      ? {}
      : { reconcileDelayMs: config.dispatch.reconcileAfterMs }),
    limits: config.dispatch.limits,
    onFailed: (messageId, reason) => engine.fallBack(messageId, reason),
  });

  // One writer per database: a second process on the same file waits on standby until the
  // lease is free, and every write checks the lease, so a process that lost it cannot write.
  const holder = leaseHolder();
  const now = (): string => toIsoUtc(systemClock.now());
  let role: 'active' | 'standby' = 'standby';
  let standbyFor: string | undefined;

  // HTTP first: a second process that cannot have the port must stop before it fires a timer.
  const app = createApp({
    role: () => (standbyFor === undefined ? { role } : { role, holder: standbyFor }),
    engine,
    store,
    log,
    token: config.server.token,
    maxBodyBytes: config.server.maxBodyBytes,
    webhookSecrets: config.webhookSecrets,
    ...(sandbox ? { recorder: sandbox.recorder } : {}),
    ...(twilioConfig?.provider === 'twilio'
      ? { twilio: { authToken: twilioConfig.authToken, publicUrl: () => publicUrl ?? '' } }
      : {}),
    ...(vonageToken === undefined ? {} : { vonage: { token: vonageToken } }),
    ...(whatsappConfig
      ? {
          whatsapp: {
            appSecret: whatsappConfig.appSecret,
            verifyToken: whatsappConfig.verifyToken,
          },
        }
      : {}),
  });
  let server: ServerType;
  try {
    server = await listen(app.fetch, config.server.host, config.server.port);
  } catch (cause) {
    store.close();
    await Promise.all([...channels.values()].map((channel) => channel.close()));
    await sandbox?.close();
    throw new TocsinError(
      'E_SERVER_LISTEN',
      `cannot listen on ${config.server.host}:${config.server.port} (${(cause as NodeJS.ErrnoException).code ?? 'error'}); is another tocsin running? choose another port with --port`,
      { cause },
    );
  }

  const address = server.address() as AddressInfo;
  const url = `http://${config.server.host}:${address.port}`;
  publicUrl ??= url;
  if (sandbox) sandbox.whatsappWebhook.url = `${url}/providers/whatsapp`;

  const ttlMs = config.lease.ttlMs;
  let stop: (error: TocsinError) => void = () => undefined;
  const stopped = new Promise<TocsinError>((resolve) => {
    stop = resolve;
  });
  let renewal: NodeJS.Timeout | undefined;
  let waiting: NodeJS.Timeout | undefined;

  // Resume open incidents, reconcile the outbox, then let time run.
  const activate = (): void => {
    role = 'active';
    standbyFor = undefined;
    store.holdLease(holder, now);
    dispatcher.recoverInFlight();
    engine.onMessagesDecided(() => dispatcher.wake());
    engine.restore();
    engine.start();
    dispatcher.wake();
    renewal = setInterval(renew, Math.max(500, Math.floor(ttlMs / 3)));
    log.info({ ttlMs }, 'writer lease taken; active');
  };
  const renew = (): void => {
    let held: boolean;
    try {
      held = store.renewLease(holder, now(), ttlMs);
    } catch (error) {
      // A busy database this round is no reason to give up; the next round tries again.
      log.warn({ err: error }, 'writer lease renewal failed; retrying');
      return;
    }
    if (held) return;
    clearInterval(renewal);
    role = 'standby';
    engine.stop();
    void dispatcher.stop();
    const error = new TocsinError(
      'E_STORE_LEASE_LOST',
      'another process took the writer lease; stopping so that nothing is sent twice',
    );
    log.error({ code: error.code }, 'writer lease lost; stopping');
    stop(error);
  };
  const tryAcquire = (): void => {
    const lease = store.acquireLease(holder, now(), ttlMs, isDeadHere);
    if (lease.holder === holder) {
      clearInterval(waiting);
      activate();
      return;
    }
    if (standbyFor !== lease.holder) {
      log.info(
        { holder: lease.holder, until: lease.expiresAt },
        'writer lease held elsewhere; standby',
      );
    }
    standbyFor = lease.holder;
  };
  tryAcquire();
  if (role === 'standby') {
    waiting = setInterval(
      () => {
        try {
          tryAcquire();
        } catch (error) {
          log.warn({ err: error }, 'writer lease check failed; retrying');
        }
      },
      Math.max(250, Math.floor(ttlMs / 5)),
    );
  }

  log.info(
    {
      port: address.port,
      role,
      playbooks: playbooks.length,
      people: directory.people.length,
      sandbox: config.sandbox,
    },
    'service started',
  );

  return {
    url,
    engine,
    store,
    sandbox,
    holder,
    stopped,
    close: async () => {
      clearInterval(waiting);
      clearInterval(renewal);
      await new Promise<void>((resolve) => server.close(() => resolve()));
      engine.stop();
      await dispatcher.stop();
      // Handing the lease back lets a standby take over now rather than when it runs out.
      if (role === 'active') store.releaseLease(holder);
      await Promise.all([...channels.values()].map((channel) => channel.close()));
      await sandbox?.close();
      store.close();
    },
  };
}

/** The playbooks and the directory a config names, checked. */
export async function loadPlan(config: ServiceConfig): Promise<{
  templates: TemplateEngine;
  playbooks: LoadedPlaybook[];
  directory: Directory;
}> {
  const templates = new TemplateEngine();
  const files = await findPlaybookFiles(config.playbooks);
  const playbooks = await Promise.all(files.map((file) => loadPlaybook(file, { templates })));
  rejectDuplicateNames(playbooks);
  const directory = await loadDirectory(config.directory);
  return { templates, playbooks, directory };
}

/** WhatsApp's customer-service window: 24 hours from the person's latest message. */
const WHATSAPP_WINDOW_MS = 24 * 60 * 60 * 1000;

function isLoopback(baseUrl: string): boolean {
  const host = new URL(baseUrl).hostname;
  return host === 'localhost' || host === '::1' || host === '[::1]' || host.startsWith('127.');
}

function rejectDuplicateNames(playbooks: readonly LoadedPlaybook[]): void {
  const seen = new Map<string, string>();
  for (const playbook of playbooks) {
    const first = seen.get(playbook.name);
    if (first !== undefined) {
      throw new TocsinError(
        'E_PLAYBOOK_DUPLICATE_NAME',
        `${playbook.file} and ${first} are both named "${playbook.name}"; give each playbook its own metadata.name`,
      );
    }
    seen.set(playbook.name, playbook.file);
  }
}

function toSandboxChannels(sandbox: Sandbox): ServiceConfig['channels'] {
  return {
    whatsapp: {
      baseUrl: sandbox.httpUrl,
      apiVersion: 'v23.0',
      phoneNumberId: SANDBOX_CREDENTIALS.whatsappPhoneNumberId,
      accessToken: SANDBOX_CREDENTIALS.whatsappAccessToken,
      appSecret: SANDBOX_CREDENTIALS.whatsappAppSecret,
      verifyToken: SANDBOX_CREDENTIALS.whatsappVerifyToken,
    },
    sms: {
      provider: 'twilio',
      baseUrl: sandbox.httpUrl,
      accountSid: SANDBOX_CREDENTIALS.accountSid,
      authToken: SANDBOX_CREDENTIALS.authToken,
      from: SANDBOX_CREDENTIALS.from,
    },
    smsFailover: {
      provider: 'vonage',
      baseUrl: sandbox.httpUrl,
      apiKey: SANDBOX_CREDENTIALS.vonageApiKey,
      apiSecret: SANDBOX_CREDENTIALS.vonageApiSecret,
      from: SANDBOX_CREDENTIALS.vonageFrom,
    },
    chat: {
      webhooks: {
        'it-ops': { format: 'slack', url: `${sandbox.httpUrl}/chat/slack/it-ops` },
        management: { format: 'teams', url: `${sandbox.httpUrl}/chat/teams/management` },
        siem: {
          format: 'json',
          url: `${sandbox.httpUrl}/chat/json/siem`,
          secret: SANDBOX_CREDENTIALS.chatSecret,
        },
      },
    },
    email: {
      host: sandbox.smtp.host,
      port: sandbox.smtp.port,
      secure: false,
      from: 'Tocsin Sandbox <tocsin@sandbox.invalid>',
    },
  };
}

function warnAboutMissingChannels(
  used: string[],
  channels: Map<string, ChannelAdapter>,
  log: Logger,
): void {
  const missing = [...new Set(used)].filter((kind) => !channels.has(kind));
  if (missing.length > 0)
    log.warn({ channels: missing }, 'playbooks use channels that are not configured');
}

function listen(
  fetch: (request: Request) => Response | Promise<Response>,
  host: string,
  port: number,
): Promise<ServerType> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch, hostname: host, port }, () => resolve(server));
    server.once('error', reject);
  });
}
