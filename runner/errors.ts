import { TocsinError } from '../src/checks.js';

/** A mistake in how the CLI was called: printed with a hint, exit code 2. */
export class UsageError extends TocsinError {
  override name = 'UsageError';

  constructor(message: string) {
    super('E_USAGE', message);
  }
}

/** An HTTP answer with a status and a one-line reason. */
export class HttpError extends Error {
  override name = 'HttpError';

  constructor(
    readonly status: 400 | 401 | 403 | 404 | 409 | 413 | 415 | 422 | 500 | 503,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
