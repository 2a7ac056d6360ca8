import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  checkSchema,
  ConfigError,
  parseDuration,
  parseYamlSource,
  PlaybookValidationError,
} from '../src/checks.js';
import type {
  ChannelLimit,
  ChatWebhooksConfig,
  SmtpEmailConfig,
  TwilioSmsConfig,
  VonageSmsConfig,
  WhatsAppCloudConfig,
} from '../src/index.js';

/** The package's own folder, where the example playbook and directory live. */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Credentials of the built-in stand-ins; they guard nothing real. */
export const SANDBOX_CREDENTIALS = {
  accountSid: 'AC00000000000000000000000000000000',
  authToken: 'sandbox-auth-token',
  from: '+15005550006',
  apiToken: 'sandbox-token',
  whatsappPhoneNumberId: '106540352242922',
  whatsappAccessToken: 'sandbox-whatsapp-token',
  whatsappAppSecret: 'sandbox-app-secret',
  whatsappVerifyToken: 'sandbox-verify-token',
  vonageApiKey: 'sandbox-key',
  vonageApiSecret: 'sandbox-vonage-secret',
  vonageFrom: '15005550006',
  chatSecret: 'sandbox-chat-secret',
} as const;

/** How the service runs, with paths resolved and secrets read. */
export interface ServiceConfig {
  database: string;
  playbooks: string[];
  directory: string;
  sandbox: boolean;
  server: {
    host: string;
    port: number;
    token: string;
    maxBodyBytes: number;
    /** The URL providers call back to (receipts, replies); default: the service's own. */
    publicUrl?: string;
  };
  webhookSecrets: { pagerduty?: string; grafana?: string; grafanaTimestampHeader?: string };
  dispatch: {
    concurrency: number;
    sendTimeoutMs: number;
    firstRetryAfterMs?: number;
    reconcileAfterMs?: number;
    /** Per channel kind: messages per second, and the least gap between two to one person. */
    limits: Record<string, ChannelLimit>;
  };
  /** How long the writer lease lasts unless renewed (renewed every third of it). */
  lease: { ttlMs: number };
  channels: {
    sms?: SmsProviderConfig;
    /** Tried at once when the first SMS provider is down or refuses the account. */
    smsFailover?: SmsProviderConfig;
    email?: SmtpEmailConfig;
    whatsapp?: WhatsAppChannelConfig;
    chat?: ChatWebhooksConfig;
  };
}

/** An SMS provider: Twilio or Vonage. */
export type SmsProviderConfig = (
  ({ provider: 'twilio' } & TwilioSmsConfig) | ({ provider: 'vonage' } & VonageSmsConfig)
) & {
  /** Ask for delivery receipts (default true). */
  receipts?: boolean;
};

/** The WhatsApp Cloud API channel with the secrets its webhooks need. */
export type WhatsAppChannelConfig = WhatsAppCloudConfig & {
  /** The Meta app's secret: it signs every webhook (X-Hub-Signature-256). */
  appSecret: string;
  /** What Meta must quote when it verifies the webhook URL. */
  verifyToken: string;
};

type SecretRef = { env: string } | { file: string };

type SmsProviderDefinition = (
  | (Omit<TwilioSmsConfig, 'authToken'> & { provider: 'twilio'; authToken: SecretRef })
  | (Omit<VonageSmsConfig, 'apiSecret' | 'baseUrl'> & {
      provider: 'vonage';
      baseUrl?: string;
      apiSecret: SecretRef;
    })
) & { receipts?: boolean };

interface ConfigDefinition {
  database?: string;
  playbooks?: string[];
  directory?: string;
  sandbox?: boolean;
  server?: {
    host?: string;
    port?: number;
    token?: SecretRef;
    maxBodyBytes?: number;
    publicUrl?: string;
  };
  webhooks?: {
    pagerduty?: { secret: SecretRef };
    grafana?: { secret: SecretRef; timestampHeader?: string };
  };
  dispatch?: {
    concurrency?: number;
    sendTimeout?: string;
    firstRetryAfter?: string;
    reconcileAfter?: string;
    limits?: Record<string, { perSecond?: number; recipientGap?: string }>;
  };
  lease?: { ttl?: string };
  channels?: {
    sms?: SmsProviderDefinition;
    smsFailover?: SmsProviderDefinition;
    whatsapp?: {
      provider: 'whatsapp-cloud';
      baseUrl?: string;
      apiVersion?: string;
      phoneNumberId: string;
      accessToken: SecretRef;
      appSecret: SecretRef;
      verifyToken: SecretRef;
    };
    chat?: {
      webhooks: Record<
        string,
        { format: 'slack' | 'teams' | 'json'; url: SecretRef; secret?: SecretRef }
      >;
    };
    email?: Omit<SmtpEmailConfig, 'password' | 'port' | 'secure'> & {
      provider: 'smtp';
      port?: number;
      secure?: boolean;
      password?: SecretRef;
    };
  };
}

/**
 * Reads the service config, or gives the embedded default when `file` is undefined: SQLite under
 * `./var`, the example playbooks and directory, and the built-in sandbox. `TOCSIN_TOKEN`, when
 * set, gives the API token.
 *
 * @throws ConfigError E_CONFIG_INVALID or E_CONFIG_SECRET_MISSING
 */
export async function loadServiceConfig(
  file: string | undefined,
  env: NodeJS.ProcessEnv,
  options: { resolveSecrets?: boolean } = {},
): Promise<ServiceConfig> {
  if (file === undefined) return embeddedDefault(env);

  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new ConfigError(
      'E_CONFIG_INVALID',
      `${file} cannot be read; check the path given to --config`,
      { cause },
    );
  }
  const source = parseYamlSource(text, file);
  const problems = checkSchema('config', source);
  if (problems.length > 0) throw new PlaybookValidationError(file, problems);

  const definition = source.value as ConfigDefinition;
  const base = path.dirname(path.resolve(file));
  const at = (relative: string): string => path.resolve(base, relative);
  const defaults = embeddedDefault(env);
  const sandbox = definition.sandbox ?? false;

  const dispatchDuration = (key: 'sendTimeout' | 'firstRetryAfter' | 'reconcileAfter') => {
    const text = definition.dispatch?.[key];
    if (text === undefined) return undefined;
    const ms = parseDuration(text)?.toMillis();
    if (ms === undefined || ms > 3_600_000) {
      throw new ConfigError(
        'E_CONFIG_INVALID',
        `${file}: dispatch.${key} "${text}" is not a duration up to an hour; write it like 30s`,
      );
    }
    return ms;
  };
  const sendTimeoutMs = dispatchDuration('sendTimeout') ?? 30_000;
  const firstRetryAfterMs = dispatchDuration('firstRetryAfter');
  const reconcileAfterMs = dispatchDuration('reconcileAfter');

  const leaseTtl = definition.lease?.ttl;
  const leaseTtlMs =
    leaseTtl === undefined ? defaults.lease.ttlMs : parseDuration(leaseTtl)?.toMillis();
  if (leaseTtlMs === undefined || leaseTtlMs < 2_000 || leaseTtlMs > 600_000) {
    throw new ConfigError(
      'E_CONFIG_INVALID',
      `${file}: lease.ttl "${leaseTtl}" is not a duration between 2s and 10m; write it like 15s`,
    );
  }

  const resolveSecrets = options.resolveSecrets ?? true;
  const secret = (ref: SecretRef, where: string): string =>
    resolveSecrets ? readSecret(ref, env, base, where) : '';
  const tokenRef = definition.server?.token;
  const token =
    env.TOCSIN_TOKEN ??
    (tokenRef ? secret(tokenRef, 'server.token') : sandbox ? defaults.server.token : undefined);
  if (resolveSecrets && (token === undefined || token === '')) {
    throw new ConfigError(
      'E_CONFIG_SECRET_MISSING',
      `${file}: no API token; set TOCSIN_TOKEN or give server.token as {env: NAME} or {file: PATH}`,
    );
  }

  return {
    database: definition.database === undefined ? defaults.database : at(definition.database),
    playbooks: definition.playbooks?.map(at) ?? defaults.playbooks,
    directory: definition.directory === undefined ? defaults.directory : at(definition.directory),
    sandbox,
    server: {
      host: definition.server?.host ?? defaults.server.host,
      port: definition.server?.port ?? defaults.server.port,
      token: token ?? '',
      maxBodyBytes: definition.server?.maxBodyBytes ?? defaults.server.maxBodyBytes,
      ...(definition.server?.publicUrl === undefined
        ? {}
        : { publicUrl: definition.server.publicUrl }),
    },
    dispatch: {
      concurrency: definition.dispatch?.concurrency ?? defaults.dispatch.concurrency,
      sendTimeoutMs,
      ...(firstRetryAfterMs === undefined ? {} : { firstRetryAfterMs }),
      ...(reconcileAfterMs === undefined ? {} : { reconcileAfterMs }),
      limits: readLimits(definition.dispatch?.limits ?? {}, file),
    },
    lease: { ttlMs: leaseTtlMs },
    channels: readChannels(definition.channels ?? {}, secret),
    webhookSecrets: {
      ...(definition.webhooks?.pagerduty
        ? { pagerduty: secret(definition.webhooks.pagerduty.secret, 'webhooks.pagerduty.secret') }
        : {}),
      ...(definition.webhooks?.grafana
        ? { grafana: secret(definition.webhooks.grafana.secret, 'webhooks.grafana.secret') }
        : {}),
      ...(definition.webhooks?.grafana?.timestampHeader === undefined
        ? {}
        : { grafanaTimestampHeader: definition.webhooks.grafana.timestampHeader }),
    },
  };
}

function embeddedDefault(env: NodeJS.ProcessEnv): ServiceConfig {
  if (env.TOCSIN_TOKEN === '') {
    throw new ConfigError(
      'E_CONFIG_SECRET_MISSING',
      'TOCSIN_TOKEN is set but empty; give it a value or unset it',
    );
  }
  return {
    database: path.resolve('var', 'tocsin.db'),
    playbooks: [path.join(PACKAGE_ROOT, 'playbooks')],
    directory: path.join(PACKAGE_ROOT, 'examples', 'directory.yaml'),
    sandbox: true,
    server: {
      host: '127.0.0.1',
      port: 8080,
      token: env.TOCSIN_TOKEN ?? SANDBOX_CREDENTIALS.apiToken,
      maxBodyBytes: 1024 * 1024,
    },
    dispatch: { concurrency: 16, sendTimeoutMs: 30_000, limits: { ...DEFAULT_LIMITS } },
    lease: { ttlMs: 15_000 },
    channels: {},
    webhookSecrets: {},
  };
}

/** WhatsApp's Cloud API: 80 messages per second per number, about one per 6 s to one person. */
const DEFAULT_LIMITS: Readonly<Record<string, ChannelLimit>> = {
  whatsapp: { perSecond: 80, recipientGapMs: 6_000 },
};

function readLimits(
  limits: NonNullable<NonNullable<ConfigDefinition['dispatch']>['limits']>,
  file: string,
): Record<string, ChannelLimit> {
  const result: Record<string, ChannelLimit> = { ...DEFAULT_LIMITS };
  for (const [channel, limit] of Object.entries(limits)) {
    const gap = limit.recipientGap;
    const gapMs = gap === undefined ? undefined : parseDuration(gap)?.toMillis();
    if (gap !== undefined && (gapMs === undefined || gapMs > 86_400_000)) {
      throw new ConfigError(
        'E_CONFIG_INVALID',
        `${file}: dispatch.limits.${channel}.recipientGap "${gap}" is not a duration up to a day; write it like 10s`,
      );
    }
    result[channel] = {
      ...(limit.perSecond === undefined ? {} : { perSecond: limit.perSecond }),
      ...(gapMs === undefined ? {} : { recipientGapMs: gapMs }),
    };
  }
  return result;
}

function readChannels(
  channels: NonNullable<ConfigDefinition['channels']>,
  secret: (ref: SecretRef, where: string) => string,
): ServiceConfig['channels'] {
  const result: ServiceConfig['channels'] = {};
  if (channels.sms) result.sms = readSmsProvider(channels.sms, 'channels.sms', secret);
  if (channels.smsFailover) {
    result.smsFailover = readSmsProvider(channels.smsFailover, 'channels.smsFailover', secret);
  }
  if (channels.whatsapp) {
    const whatsapp = channels.whatsapp;
    result.whatsapp = {
      baseUrl: whatsapp.baseUrl ?? 'https://graph.facebook.com',
      apiVersion: whatsapp.apiVersion ?? 'v23.0',
      phoneNumberId: whatsapp.phoneNumberId,
      accessToken: secret(whatsapp.accessToken, 'channels.whatsapp.accessToken'),
      appSecret: secret(whatsapp.appSecret, 'channels.whatsapp.appSecret'),
      verifyToken: secret(whatsapp.verifyToken, 'channels.whatsapp.verifyToken'),
    };
  }
  if (channels.chat) {
    result.chat = {
      webhooks: Object.fromEntries(
        Object.entries(channels.chat.webhooks).map(([name, webhook]) => {
          const where = `channels.chat.webhooks.${name}`;
          return [
            name,
            {
              format: webhook.format,
              url: webhookUrl(secret(webhook.url, `${where}.url`), `${where}.url`),
              ...(webhook.secret === undefined
                ? {}
                : { secret: secret(webhook.secret, `${where}.secret`) }),
            },
          ];
        }),
      ),
    };
  }
  if (channels.email) {
    const { provider: _provider, password, ...rest } = channels.email;
    result.email = {
      ...rest,
      port: rest.port ?? (rest.secure ? 465 : 587),
      secure: rest.secure ?? false,
      ...(password === undefined ? {} : { password: secret(password, 'channels.email.password') }),
    };
  }
  return result;
}

/** A chat webhook's URL, checked without ever printing it (it carries the room's token). */
function webhookUrl(value: string, where: string): string {
  // Not read (validate, and --db commands, leave secrets unread): nothing to check.
  if (value === '') return value;
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (url?.protocol !== 'https:' && url?.protocol !== 'http:') {
    throw new ConfigError(
      'E_CONFIG_INVALID',
      `${where} is not an http(s) URL; give the webhook URL the chat service showed when it was created`,
    );
  }
  return value;
}

function readSmsProvider(
  definition: SmsProviderDefinition,
  where: string,
  secret: (ref: SecretRef, where: string) => string,
): SmsProviderConfig {
  if (definition.provider === 'vonage') {
    const { apiSecret, ...rest } = definition;
    return {
      ...rest,
      baseUrl: rest.baseUrl ?? 'https://rest.nexmo.com',
      apiSecret: secret(apiSecret, `${where}.apiSecret`),
    };
  }
  const { authToken, ...rest } = definition;
  return {
    ...rest,
    baseUrl: rest.baseUrl ?? 'https://api.twilio.com',
    authToken: secret(authToken, `${where}.authToken`),
  };
}

function readSecret(ref: SecretRef, env: NodeJS.ProcessEnv, base: string, where: string): string {
  if ('env' in ref) {
    const value = env[ref.env];
    if (value === undefined || value === '') {
      throw new ConfigError(
        'E_CONFIG_SECRET_MISSING',
        `${where} names environment variable ${ref.env}, which is ${value === undefined ? 'not set' : 'empty'}; export it with the secret`,
      );
    }
    return value;
  }
  const file = path.resolve(base, ref.file);
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (cause) {
    throw new ConfigError(
      'E_CONFIG_SECRET_MISSING',
      `${where} names file ${file}, which cannot be read; check the path`,
      { cause },
    );
  }
}
