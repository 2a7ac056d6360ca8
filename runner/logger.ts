import { pino } from 'pino';
import type { DestinationStream, Logger as PinoLogger } from 'pino';

import type { Logger } from '../src/index.js';

/**
 * The process logger: one JSON object per line. Errors keep only their type, code and message
 * (never `cause`, which may quote a provider's answer); known secret paths are redacted as a
 * backstop.
 */
export function createLogger(
  options: { level?: string; destination?: DestinationStream } = {},
): Logger {
  const logger: PinoLogger = pino(
    {
      level: options.level ?? 'info',
      base: null,
      serializers: { err: serializeError },
      redact: {
        paths: [
          'authorization',
          'token',
          'password',
          'authToken',
          '*.authorization',
          '*.token',
          '*.password',
        ],
        censor: '[redacted]',
      },
    },
    // Written synchronously: a line such as "messages in flight at a crash" must reach stdout
    // even when the process is killed right after it.
    options.destination ?? pino.destination({ dest: 1, sync: true }),
  );
  return logger;
}

function serializeError(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { type: typeof error };
  const fields: Record<string, unknown> = { type: error.name, message: error.message };
  const extra = error as {
    code?: unknown;
    retryable?: unknown;
    providerCode?: unknown;
    status?: unknown;
  };
  if (extra.code !== undefined) fields.code = extra.code;
  if (extra.retryable !== undefined) fields.retryable = extra.retryable;
  if (extra.providerCode !== undefined) fields.providerCode = extra.providerCode;
  if (extra.status !== undefined) fields.status = extra.status;
  if (!('code' in fields) || String(fields.code).startsWith('E_') === false)
    fields.stack = error.stack;
  return fields;
}
