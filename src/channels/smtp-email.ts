import nodemailer from 'nodemailer';

import { ChannelError } from '../errors.js';
import type { ChannelAdapter, OutgoingMessage, SendReceipt } from './channel.js';
import { emailHtml } from './email-html.js';

/** Settings of the SMTP email channel. */
export interface SmtpEmailConfig {
  host: string;
  port: number;
  /** TLS from the first byte (port 465); otherwise STARTTLS when the server offers it. */
  secure: boolean;
  user?: string;
  password?: string;
  from: string;
  connections?: number;
}

/** Email over SMTP with nodemailer, from a small pool of connections. */
export function createSmtpEmailChannel(config: SmtpEmailConfig): ChannelAdapter {
  const transport = nodemailer.createTransport({
    host: config.host,
    port: config.port,
    secure: config.secure,
    pool: true,
    maxConnections: config.connections ?? 4,
    ...(config.user === undefined
      ? {}
      : { auth: { user: config.user, pass: config.password ?? '' } }),
    logger: false,
  });

  async function send(message: OutgoingMessage, signal: AbortSignal): Promise<SendReceipt> {
    if (signal.aborted)
      throw new ChannelError('E_CHANNEL_UNAVAILABLE', 'SMTP send was cancelled', {
        retryable: true,
      });
    try {
      const info = await transport.sendMail({
        from: config.from,
        to: message.address,
        subject: message.subject ?? '',
        text: message.body,
        html: emailHtml(message.subject ?? '', message.body),
        headers: {
          'X-Tocsin-Incident': message.incidentId,
          'X-Tocsin-Message': String(message.id),
        },
      });
      return { providerId: String(info.messageId) };
    } catch (cause) {
      const { responseCode, command } = cause as { responseCode?: number; command?: string };
      // RFC 5321: 4yz replies are transient, 5yz permanent; no reply at all means a network fault.
      const retryable = responseCode === undefined || responseCode < 500;
      const details: {
        retryable: boolean;
        cause: unknown;
        providerCode?: string;
        scope?: 'recipient' | 'channel';
      } = { retryable, cause };
      if (responseCode !== undefined) details.providerCode = String(responseCode);
      // A refused login (530, 534, 535) fails every message; a refused RCPT TO, this address.
      if (
        !retryable &&
        (command?.startsWith('AUTH') || [530, 534, 535].includes(responseCode ?? 0))
      )
        details.scope = 'channel';
      else if (!retryable && command === 'RCPT TO') details.scope = 'recipient';
      throw new ChannelError(
        retryable ? 'E_CHANNEL_UNAVAILABLE' : 'E_CHANNEL_REJECTED',
        `SMTP server ${config.host}:${config.port} ${responseCode === undefined ? 'could not be reached' : `answered ${responseCode}`}`,
        details,
      );
    }
  }

  return {
    kind: 'email',
    provider: 'smtp',
    send,
    close: () => {
      transport.close();
      return Promise.resolve();
    },
  };
}
