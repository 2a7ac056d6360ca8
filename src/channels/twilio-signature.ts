import { createHmac, timingSafeEqual } from 'node:crypto';

/** Form parameters as Twilio posts them; a repeated key carries several values. */
export type TwilioParams = Readonly<Record<string, string | readonly string[]>>;

/**
 * The `X-Twilio-Signature` of a request: HMAC-SHA1 with the auth token over the full URL Twilio
 * called (scheme, host, path and query) followed by every POST parameter name and value, names
 * sorted, in base64.
 */
export function twilioSignature(authToken: string, url: string, params: TwilioParams): string {
  let data = url;
  for (const name of Object.keys(params).sort()) {
    const value = params[name];
    const values = typeof value === 'string' ? [value] : [...(value ?? [])].sort();
    for (const item of values) data += name + item;
  }
  return createHmac('sha1', authToken).update(data, 'utf8').digest('base64');
}

/** Whether `signature` is the one Twilio would send for this request. */
export function isTwilioSignatureValid(
  authToken: string,
  url: string,
  params: TwilioParams,
  signature: string | undefined,
): boolean {
  if (!signature) return false;
  const expected = Buffer.from(twilioSignature(authToken, url, params));
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

/** Reads a form body into the parameter map the signature covers. */
export function readTwilioForm(body: string): Record<string, string | string[]> {
  const params: Record<string, string | string[]> = {};
  for (const [name, value] of new URLSearchParams(body)) {
    const existing = params[name];
    if (existing === undefined) params[name] = value;
    else params[name] = typeof existing === 'string' ? [existing, value] : [...existing, value];
  }
  return params;
}
