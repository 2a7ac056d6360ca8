/**
 * The logging interface the library receives: a subset of pino's. `runner/` passes a real pino
 * logger; tests pass one writing to memory.
 *
 * @module
 */

/** Structured fields of a log line: ids, counts, codes, durations; never personal data. */
export type LogFields = Record<string, unknown>;

/** A pino-compatible logger: fields first, a constant message second. */
export interface Logger {
  child(bindings: LogFields): Logger;
  debug(fields: LogFields, message: string): void;
  info(fields: LogFields, message: string): void;
  warn(fields: LogFields, message: string): void;
  error(fields: LogFields, message: string): void;
}

/** A logger that drops everything. */
export const noopLogger: Logger = {
  child: () => noopLogger,
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};
