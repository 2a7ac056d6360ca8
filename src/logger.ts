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

/**
 * A child logger made only when it first logs: on a hot path (one per message sent) most
 * children would never write a line, and making one costs more than sending the message.
 */
export function lazyChild(parent: Logger, bindings: LogFields): Logger {
  let child: Logger | undefined;
  const real = (): Logger => (child ??= parent.child(bindings));
  return {
    child: (more) => real().child(more),
    debug: (fields, message) => {
      // pino says whether debug lines are written at all; then no child is needed.
      if (
        (parent as { isLevelEnabled?: (level: string) => boolean }).isLevelEnabled?.('debug') ===
        false
      )
        return;
      real().debug(fields, message);
    },
    info: (fields, message) => real().info(fields, message),
    warn: (fields, message) => real().warn(fields, message),
    error: (fields, message) => real().error(fields, message),
  };
}
