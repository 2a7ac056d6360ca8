import type { IncomingMessage } from 'node:http';

import type { MiddlewareHandler } from 'hono';

/** The kinds of trouble a stand-in can make, as real providers and networks do. */
export type FaultKind =
  | 'throttle'
  | 'server-error'
  | 'unavailable'
  | 'timeout-before'
  | 'timeout-after'
  | 'reset-before'
  | 'reset-after'
  | 'slow';

/** How often a stand-in fails, and how. */
export interface FaultOptions {
  /** Share of calls that meet a fault, 0 to 1. */
  rate: number;
  /** Seeds the choice of calls and faults, so a run can be repeated. */
  seed: number;
  /** Relative weights of the kinds; every kind weighs 1 unless given. */
  weights?: Partial<Record<FaultKind, number>>;
  /** How long a slow answer takes. */
  slowMs?: number;
  /** How long a timeout holds the call before closing it (the client usually gives up first). */
  hangMs?: number;
}

/** The faults a stand-in answers in its provider's own words. */
export type RefusalKind = 'throttle' | 'server-error' | 'unavailable';

/** How a provider says it will not take a call: status, error body, extra headers. */
export interface FaultAnswer {
  status: 200 | 429 | 400 | 500 | 503;
  body: Record<string, unknown>;
  headers?: Record<string, string>;
}

/** What the injector did, per kind, for a test to compare with what Tocsin recorded. */
export type FaultCounts = Record<FaultKind | 'passed', number>;

const KINDS: FaultKind[] = [
  'throttle',
  'server-error',
  'unavailable',
  'timeout-before',
  'timeout-after',
  'reset-before',
  'reset-after',
  'slow',
];

/**
 * A middleware that fails a seeded share of calls: a throttle, 500 and 503 before the
 * message is taken, a call held until the client gives up or a connection reset, each either
 * before the handler ran or after it took the message (the answer lost), and slow answers.
 * `after` faults are the ones that can make a careless client send twice.
 */
export function injectFaults(
  options: FaultOptions,
  answer: (kind: RefusalKind) => FaultAnswer,
): { middleware: MiddlewareHandler; counts: FaultCounts } {
  const random = seededRandom(options.seed);
  const weights = KINDS.map((kind) => Math.max(0, options.weights?.[kind] ?? 1));
  const total = weights.reduce((sum, weight) => sum + weight, 0);
  const counts = Object.fromEntries([...KINDS, 'passed'].map((kind) => [kind, 0])) as FaultCounts;

  const pick = (): FaultKind | undefined => {
    if (total === 0 || random() >= options.rate) return undefined;
    let point = random() * total;
    for (const [index, kind] of KINDS.entries()) {
      point -= weights[index] ?? 0;
      if (point < 0) return kind;
    }
    return KINDS[KINDS.length - 1];
  };

  const middleware: MiddlewareHandler = async (c, next) => {
    const fault = pick();
    counts[fault ?? 'passed']++;
    const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
    const hang = (): Promise<void> =>
      new Promise((resolve) => {
        const timer = setTimeout(resolve, options.hangMs ?? 60_000);
        incoming?.socket.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    const reset = (): void => {
      incoming?.socket.destroy();
    };

    switch (fault) {
      case undefined:
        return next();
      case 'throttle':
      case 'server-error':
      case 'unavailable': {
        const refusal = answer(fault);
        for (const [name, value] of Object.entries(refusal.headers ?? {})) c.header(name, value);
        return c.json(refusal.body, refusal.status);
      }
      case 'timeout-before':
        await hang();
        return c.body(null, 504);
      case 'reset-before':
        reset();
        return c.body(null, 500);
      case 'slow':
        await new Promise((resolve) => setTimeout(resolve, options.slowMs ?? 500));
        return next();
      case 'timeout-after':
        await next();
        await hang();
        return;
      case 'reset-after':
        await next();
        reset();
        return;
    }
  };

  return { middleware, counts };
}

/** mulberry32: a small, fast generator, good enough to pick faults reproducibly. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
