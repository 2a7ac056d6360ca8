import { createHmac, timingSafeEqual } from 'node:crypto';

/** The headers that carry a signed JSON webhook's time and signature. */
export const SIGNATURE_HEADERS = {
  timestamp: 'x-tocsin-timestamp',
  signature: 'x-tocsin-signature',
} as const;

/** How far a signed request's time may be from the receiver's clock, in seconds. */
export const SIGNATURE_TOLERANCE_S = 300;

/**
 * Tocsin's signature of a JSON webhook: `v1=` and the hex HMAC-SHA256, keyed with the shared
 * secret, of the Unix time in seconds, a dot, and the exact body bytes. Signing the time with the
 * body lets a receiver refuse a replayed request once it is older than the tolerance.
 */
export function webhookSignature(secret: string, timestamp: number, body: string): string {
  const mac = createHmac('sha256', secret).update(`${timestamp}.${body}`, 'utf8').digest('hex');
  return `v1=${mac}`;
}

/** Why a signed webhook was refused, or `valid`. */
export type SignatureCheck = 'valid' | 'missing' | 'stale' | 'mismatch';

/**
 * Checks a signed JSON webhook as a receiver should: the timestamp is within the tolerance of
 * `nowS` (a replay is older), and the signature matches in constant time.
 */
export function checkWebhookSignature(
  secret: string,
  body: string,
  timestampHeader: string | undefined,
  signatureHeader: string | undefined,
  nowS: number,
  toleranceS = SIGNATURE_TOLERANCE_S,
): SignatureCheck {
  if (!timestampHeader || !signatureHeader) return 'missing';
  if (!/^\d{1,12}$/.test(timestampHeader)) return 'mismatch';
  const timestamp = Number(timestampHeader);
  if (Math.abs(nowS - timestamp) > toleranceS) return 'stale';
  const expected = Buffer.from(webhookSignature(secret, timestamp, body));
  const given = Buffer.from(signatureHeader);
  return given.length === expected.length && timingSafeEqual(given, expected)
    ? 'valid'
    : 'mismatch';
}
