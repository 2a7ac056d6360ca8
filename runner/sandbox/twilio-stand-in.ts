import { randomBytes } from 'node:crypto';

import { Hono } from 'hono';
import type { MiddlewareHandler } from 'hono';

import { countSmsSegments, twilioSignature } from '../../src/index.js';
import type { MessageRecorder } from './recorder.js';

/** Credentials the stand-in accepts. */
export interface TwilioStandInOptions {
  accountSid: string;
  authToken: string;
  recorder: MessageRecorder;
  /** How long after accepting a message its receipt is posted to its StatusCallback. */
  receiptDelayMs?: number;
  /** Runs before each send, to make the faults real providers and networks make. */
  faults?: MiddlewareHandler;
  /** Decides, per accepted message, whether its final receipt is late, failed or never sent. */
  receiptFault?: () => ReceiptFault | undefined;
}

/** What can go wrong with a delivery receipt. */
export type ReceiptFault = 'late' | 'failed' | 'lost';

/** How late a late receipt is. */
const LATE_RECEIPT_MS = 3_000;

/** A number the stand-in accepts but never delivers: its receipt says undelivered, 30003. */
export const UNDELIVERABLE_NUMBER = '+15005550003';

// Twilio's test-credential numbers, so a test can ask for a documented error.
const MAGIC_NUMBERS: Record<string, { code: number; message: string }> = {
  '+15005550001': { code: 21211, message: "The 'To' number is not a valid phone number." },
  '+15005550002': {
    code: 21612,
    message: "The 'To' phone number is not currently reachable via SMS.",
  },
  '+15005550004': { code: 21610, message: 'Attempt to send to unsubscribed recipient' },
  '+15005550009': { code: 21614, message: "'To' number is not a valid mobile number" },
};

/**
 * A stand-in for Twilio's Messages API: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`
 * with basic auth and a form body, answering 201 with the Message resource or Twilio's error
 * body (`code`, `message`, `more_info`, `status`).
 */
export function createTwilioStandIn(options: TwilioStandInOptions): Hono {
  const app = new Hono();
  // What a GET of the Messages list shows: every message this stand-in took, oldest first here
  // (appending stays cheap at 100,000 messages); the list is answered newest first.
  const created: Record<string, unknown>[] = [];
  const sendPath = '/2010-04-01/Accounts/:accountSid/Messages.json';

  app.get(sendPath, (c) => {
    const accountSid = c.req.param('accountSid');
    if (!isAuthorized(c.req.header('authorization'), accountSid, options)) {
      return c.json(twilioError(20003, 'Authenticate', 401), 401);
    }
    return c.json(listMessages(created, new URL(c.req.url), accountSid));
  });

  if (options.faults) app.post(sendPath, options.faults);
  app.post(sendPath, async (c) => {
    const accountSid = c.req.param('accountSid');
    if (!isAuthorized(c.req.header('authorization'), accountSid, options)) {
      return c.json(twilioError(20003, 'Authenticate', 401), 401);
    }
    if (!(c.req.header('content-type') ?? '').startsWith('application/x-www-form-urlencoded')) {
      return c.json(
        twilioError(20001, 'Content-Type must be application/x-www-form-urlencoded', 400),
        400,
      );
    }

    const form = new URLSearchParams(await c.req.text());
    const to = form.get('To');
    const from = form.get('From');
    const service = form.get('MessagingServiceSid');
    const body = form.get('Body');
    if (!to) return c.json(twilioError(21604, "A 'To' phone number is required.", 400), 400);
    if ((from === null) === (service === null)) {
      return c.json(
        twilioError(21603, "A 'From' or 'MessagingServiceSid' parameter is required.", 400),
        400,
      );
    }
    if (!body) return c.json(twilioError(21602, 'Message body is required.', 400), 400);
    if (body.length > 1600)
      return c.json(
        twilioError(21617, 'The concatenated message body exceeds the 1600 character limit.', 400),
        400,
      );
    const magic = MAGIC_NUMBERS[to];
    if (magic) return c.json(twilioError(magic.code, magic.message, 400), 400);
    if (!/^\+[1-9]\d{6,14}$/.test(to)) {
      return c.json(
        twilioError(21211, `The 'To' number ${to} is not a valid phone number.`, 400),
        400,
      );
    }

    const sid = `SM${randomBytes(16).toString('hex')}`;
    options.recorder.record({
      channel: 'sms',
      provider: 'twilio',
      providerId: sid,
      to,
      from: from ?? service ?? '',
      subject: null,
      body,
    });
    const resource = toMessageResource({ sid, accountSid, to, from, service, body });
    created.push(resource);
    const callback = form.get('StatusCallback');
    const fault = callback ? options.receiptFault?.() : undefined;
    if (callback && fault !== 'lost') {
      const receipt = { accountSid, sid, to, from: from ?? service ?? '', callback };
      const delay = (options.receiptDelayMs ?? 50) + (fault === 'late' ? LATE_RECEIPT_MS : 0);
      const final = fault === 'failed' || to === UNDELIVERABLE_NUMBER ? 'undelivered' : 'delivered';
      setTimeout(() => void postReceipts(receipt, final, options.authToken), delay);
    }
    return c.json(resource, 201);
  });

  return app;
}

/**
 * Posts the status callbacks Twilio would: `sent`, then `delivered` (or `undelivered` with
 * error 30003 for the undeliverable number), each signed with X-Twilio-Signature.
 */
async function postReceipts(
  message: { accountSid: string; sid: string; to: string; from: string; callback: string },
  final: 'delivered' | 'undelivered',
  authToken: string,
): Promise<void> {
  for (const status of ['sent', final]) {
    const params: Record<string, string> = {
      AccountSid: message.accountSid,
      ApiVersion: '2010-04-01',
      From: message.from,
      MessageSid: message.sid,
      MessageStatus: status,
      SmsSid: message.sid,
      SmsStatus: status,
      To: message.to,
    };
    if (status === 'undelivered') params.ErrorCode = '30003';
    try {
      await fetch(message.callback, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'x-twilio-signature': twilioSignature(authToken, message.callback, params),
        },
        body: new URLSearchParams(params).toString(),
      });
    } catch {
      // Twilio gives up on a callback URL that does not answer; so does the stand-in.
    }
  }
}

/**
 * Twilio's Messages list: filtered by `To`, `From` and `DateSent>` (a day, YYYY-MM-DD), paged by
 * `PageSize` (at most 1000), newest first, in the list envelope Twilio answers with.
 */
function listMessages(
  created: readonly Record<string, unknown>[],
  url: URL,
  accountSid: string,
): Record<string, unknown> {
  const to = url.searchParams.get('To');
  const from = url.searchParams.get('From');
  const sentAfter = url.searchParams.get('DateSent>');
  const since =
    sentAfter === null ? Number.NEGATIVE_INFINITY : Date.parse(`${sentAfter}T00:00:00Z`);
  const pageSize = Math.min(
    1000,
    Math.max(1, Number(url.searchParams.get('PageSize') ?? 50) || 50),
  );
  const messages = [...created]
    .reverse()
    .filter(
      (message) =>
        (to === null || message.to === to) &&
        (from === null || message.from === from) &&
        Date.parse(String(message.date_created)) >= since,
    )
    .slice(0, pageSize);
  const uri = `/2010-04-01/Accounts/${accountSid}/Messages.json${url.search}`;
  return {
    messages,
    end: messages.length === 0 ? 0 : messages.length - 1,
    first_page_uri: uri,
    next_page_uri: null,
    page: 0,
    page_size: pageSize,
    previous_page_uri: null,
    start: 0,
    uri,
  };
}

function isAuthorized(
  header: string | undefined,
  accountSid: string,
  options: TwilioStandInOptions,
): boolean {
  if (!header?.startsWith('Basic ')) return false;
  const [user, password] = Buffer.from(header.slice(6), 'base64').toString('utf8').split(':', 2);
  return (
    user === options.accountSid &&
    accountSid === options.accountSid &&
    password === options.authToken
  );
}

function twilioError(code: number, message: string, status: number): Record<string, unknown> {
  return { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status };
}

function toMessageResource(message: {
  sid: string;
  accountSid: string;
  to: string;
  from: string | null;
  service: string | null;
  body: string;
}): Record<string, unknown> {
  // Twilio dates are RFC 2822 in GMT; counts are strings.
  const now = new Date().toUTCString().replace('GMT', '+0000');
  const uri = `/2010-04-01/Accounts/${message.accountSid}/Messages/${message.sid}`;
  return {
    account_sid: message.accountSid,
    api_version: '2010-04-01',
    body: message.body,
    date_created: now,
    date_sent: null,
    date_updated: now,
    direction: 'outbound-api',
    error_code: null,
    error_message: null,
    from: message.from,
    messaging_service_sid: message.service,
    num_media: '0',
    num_segments: message.service ? '0' : String(countSmsSegments(message.body).segments),
    price: null,
    price_unit: null,
    sid: message.sid,
    status: message.service ? 'accepted' : 'queued',
    subresource_uris: { media: `${uri}/Media.json` },
    to: message.to,
    uri: `${uri}.json`,
  };
}
