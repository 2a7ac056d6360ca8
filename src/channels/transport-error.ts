import { ChannelError } from '../errors.js';

// Failures where the request never reached the provider: nothing can have been sent.
const NOT_CONNECTED = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/**
 * The error for a request that got no answer. Refused before it left, it is a plain retryable
 * failure; once it may have reached the provider (a reset, a timeout, an abort), it is
 * `ambiguous`: the provider may have taken the message, so sending again could send it twice.
 */
export function transportError(provider: string, origin: string, cause: unknown): ChannelError {
  const code = errorCode(cause);
  const connected = code === undefined || !NOT_CONNECTED.has(code);
  return new ChannelError(
    'E_CHANNEL_UNAVAILABLE',
    connected
      ? `${provider} at ${origin} did not answer (${code ?? 'aborted'}); the message may have been taken`
      : `${provider} could not be reached at ${origin} (${code})`,
    { retryable: true, ambiguous: connected, cause },
  );
}

function errorCode(error: unknown): string | undefined {
  for (let current = error, depth = 0; current && depth < 4; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && NOT_CONNECTED.has(code)) return code;
    current = (current as { cause?: unknown }).cause;
  }
  const top = (error as { code?: unknown } | undefined)?.code;
  return typeof top === 'string' ? top : undefined;
}
