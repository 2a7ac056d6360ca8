import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { loadServiceConfig, PACKAGE_ROOT } from '../../runner/config.js';

describe('service config', () => {
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'tocsin-config-'));
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function write(text: string): string {
    const file = path.join(dir, 'tocsin.yaml');
    writeFileSync(file, text);
    return file;
  }

  it('gives the embedded sandbox default without a file', async () => {
    const config = await loadServiceConfig(undefined, {});

    expect(config.sandbox).toBe(true);
    expect(config.database).toBe(path.resolve('var', 'tocsin.db'));
    expect(config.playbooks).toEqual([path.join(PACKAGE_ROOT, 'playbooks')]);
    expect(config.server).toMatchObject({ host: '127.0.0.1', port: 8080, token: 'sandbox-token' });
  });

  it('takes the API token from TOCSIN_TOKEN when it is set', async () => {
    const config = await loadServiceConfig(undefined, { TOCSIN_TOKEN: 'from-env' });

    expect(config.server.token).toBe('from-env');
  });

  it('refuses an empty TOCSIN_TOKEN instead of locking everyone out', async () => {
    await expect(loadServiceConfig(undefined, { TOCSIN_TOKEN: '' })).rejects.toMatchObject({
      code: 'E_CONFIG_SECRET_MISSING',
    });
  });

  it('reads secrets from the environment and files, and paths from the config folder', async () => {
    writeFileSync(path.join(dir, 'smtp-password'), 'hunter2\n');
    const file = write(`apiVersion: tocsin/v1
kind: Config
database: state/tocsin.db
server: { token: { env: API_TOKEN } }
channels:
  sms: { provider: twilio, accountSid: AC0123456789abcdef0123456789abcdef, authToken: { env: TWILIO_TOKEN }, from: '+15005550006' }
  smsFailover: { provider: vonage, apiKey: abcd1234, apiSecret: { env: VONAGE_SECRET }, from: Tocsin }
  email: { provider: smtp, host: smtp.example.net, password: { file: smtp-password }, user: u, from: a@example.net }
`);

    const config = await loadServiceConfig(file, {
      API_TOKEN: 'api',
      TWILIO_TOKEN: 'twilio',
      VONAGE_SECRET: 'vonage',
    });

    expect(config.database).toBe(path.join(dir, 'state', 'tocsin.db'));
    expect(config.server.token).toBe('api');
    expect(config.channels.sms).toMatchObject({
      authToken: 'twilio',
      baseUrl: 'https://api.twilio.com',
    });
    expect(config.channels.smsFailover).toEqual({
      provider: 'vonage',
      apiKey: 'abcd1234',
      apiSecret: 'vonage',
      from: 'Tocsin',
      baseUrl: 'https://rest.nexmo.com',
    });
    expect(config.channels.email).toMatchObject({ password: 'hunter2', port: 587, secure: false });
  });

  it('reads chat webhooks, and refuses a URL that is not http(s) without printing it', async () => {
    const file = write(`apiVersion: tocsin/v1
kind: Config
channels:
  chat:
    webhooks:
      it-ops: { format: slack, url: { env: SLACK_URL } }
      siem: { format: json, url: { env: SIEM_URL }, secret: { env: SIEM_SECRET } }
`);
    const env = {
      SLACK_URL: 'https://hooks.slack.com/services/T0/B0/secret-part',
      SIEM_URL: 'https://siem.example.net/hooks/tocsin',
      SIEM_SECRET: 'whsec',
      TOCSIN_TOKEN: 'api',
    };

    const config = await loadServiceConfig(file, env);
    const failure = (changes: Record<string, string>): Promise<Error & { code?: string }> =>
      loadServiceConfig(file, { ...env, ...changes }).then(
        () => new Error('loaded'),
        (error: unknown) => error as Error & { code?: string },
      );
    const refused = await failure({ SLACK_URL: 'ftp://secret-part' });
    const empty = await failure({ SIEM_SECRET: '' });

    expect(config.channels.chat?.webhooks.siem).toEqual({
      format: 'json',
      url: 'https://siem.example.net/hooks/tocsin',
      secret: 'whsec',
    });
    expect(refused.code).toBe('E_CONFIG_INVALID');
    expect(refused.message).toContain('channels.chat.webhooks.it-ops.url is not an http(s) URL');
    expect(refused.message).not.toContain('secret-part');
    expect(empty.message).toContain('SIEM_SECRET, which is empty');
    // validate and --db commands read the config without its secrets.
    const unread = await loadServiceConfig(file, {}, { resolveSecrets: false });
    expect(Object.keys(unread.channels.chat?.webhooks ?? {})).toEqual(['it-ops', 'siem']);
  });

  it('names the environment variable of a missing secret', async () => {
    const file = write(`apiVersion: tocsin/v1
kind: Config
server: { token: { env: API_TOKEN } }
`);

    await expect(loadServiceConfig(file, {})).rejects.toMatchObject({
      code: 'E_CONFIG_SECRET_MISSING',
      message: expect.stringContaining('API_TOKEN') as unknown,
    });
  });

  it('requires a token outside sandbox mode', async () => {
    const file = write('apiVersion: tocsin/v1\nkind: Config\n');

    await expect(loadServiceConfig(file, {})).rejects.toMatchObject({
      code: 'E_CONFIG_SECRET_MISSING',
    });
  });

  it('says only that a misspelt SMS provider is unknown', async () => {
    const file = write(`apiVersion: tocsin/v1
kind: Config
channels:
  sms: { provider: twillio, accountSid: AC0123456789abcdef0123456789abcdef, authToken: { env: X }, from: '+15005550006' }
`);

    await expect(loadServiceConfig(file, { TOCSIN_TOKEN: 't', X: 'x' })).rejects.toMatchObject({
      problems: [
        {
          code: 'E_PLAYBOOK_SCHEMA',
          message:
            '"channels.sms.provider" is "twillio", which is not allowed; use one of "twilio", "vonage"',
          location: { file, line: 4, col: 20 },
        },
      ],
    });
  });

  it('locates a schema problem in the config file', async () => {
    const file = write('apiVersion: tocsin/v1\nkind: Config\nserver:\n  prot: 8080\n');

    await expect(loadServiceConfig(file, { TOCSIN_TOKEN: 't' })).rejects.toMatchObject({
      problems: [
        expect.objectContaining({ code: 'E_PLAYBOOK_SCHEMA', location: { file, line: 4, col: 3 } }),
      ],
    });
  });
});
