import type { AddressInfo } from 'node:net';

import { simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';

import type { MessageRecorder } from './recorder.js';

/** Mail to this domain is refused at RCPT TO with 550, as for a mailbox that does not exist. */
export const NO_SUCH_DOMAIN = 'no-such-mailbox.invalid';

/** A running SMTP stand-in. */
export interface SmtpStandIn {
  host: string;
  port: number;
  close(): Promise<void>;
}

/**
 * An SMTP server that accepts every message (no TLS, optional AUTH) and records sender,
 * recipients, subject and text.
 */
export async function startSmtpStandIn(options: {
  recorder: MessageRecorder;
  host?: string;
  port?: number;
}): Promise<SmtpStandIn> {
  const host = options.host ?? '127.0.0.1';
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    size: 10 * 1024 * 1024,
    onAuth: (_auth, _session, callback) => callback(null, { user: 'sandbox' }),
    // A mailbox that does not exist, as a receiving server says so: 550 at RCPT TO.
    onRcptTo: (address, _session, callback) => {
      if (address.address.toLowerCase().endsWith(`@${NO_SUCH_DOMAIN}`)) {
        const error = Object.assign(new Error('5.1.1 No such user here'), { responseCode: 550 });
        callback(error);
        return;
      }
      callback();
    },
    onData: (stream, session, callback) => {
      simpleParser(stream)
        .then((mail) => {
          const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
          for (const recipient of session.envelope.rcptTo) {
            options.recorder.record({
              channel: 'email',
              provider: 'smtp',
              providerId: mail.messageId ?? '',
              to: recipient.address,
              from,
              subject: mail.subject ?? null,
              body: mail.text ?? '',
              ...(typeof mail.html === 'string' ? { html: mail.html } : {}),
            });
          }
          callback();
        })
        .catch((error: Error) => callback(error));
    },
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const address = server.server.address() as AddressInfo;

  return {
    host,
    port: address.port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
