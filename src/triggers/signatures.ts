import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Checks PagerDuty's `X-PagerDuty-Signature` (`v1=<hex>`, several during secret rotation):
 * HMAC-SHA256 of the raw body with the subscription secret, any one matching, compared in
 * constant time.
 */
export function verifyPagerDutySignature(
  rawBody: string | Buffer,
  header: string | undefined,
  secret: string,
): boolean {
  if (!header) return false;
  const expected = createHmac('sha256', secret).update(rawBody).digest();
  return header
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part.startsWith('v1='))
    .some((part) => safeEqualHex(part.slice(3), expected));
}

/**
 * Checks Grafana's optional webhook HMAC (`X-Grafana-Alerting-Signature`): hex HMAC-SHA256 of
 * `timestamp:body` when a timestamp header is configured, else of the body.
 */
export function verifyGrafanaSignature(
  rawBody: string | Buffer,
  header: string | undefined,
  secret: string,
  timestamp?: string,
): boolean {
  if (!header) return false;
  const hmac = createHmac('sha256', secret);
  if (timestamp !== undefined) hmac.update(`${timestamp}:`);
  return safeEqualHex(header.trim(), hmac.update(rawBody).digest());
}

function safeEqualHex(hex: string, expected: Buffer): boolean {
  if (!/^[0-9a-f]+$/i.test(hex) || hex.length !== expected.length * 2) return false;
  return timingSafeEqual(Buffer.from(hex, 'hex'), expected);
}
