/** How fast one channel may send: per provider account, and to any one recipient. */
export interface ChannelLimit {
  /** Messages per second the provider account takes; unlimited when absent. */
  perSecond?: number;
  /** The least time between two messages to the same address on this channel. */
  recipientGapMs?: number;
}

/**
 * The send limits of every channel. A token bucket per channel holds back sends beyond the
 * provider account's rate; the dispatcher claims a row only on a channel with a token left, so a
 * row never waits for its turn while marked sending. The gap per recipient is kept in memory:
 * after a restart the first message to a person is not held back.
 */
export class RateLimits {
  private readonly buckets = new Map<string, Bucket>();
  private readonly gaps = new Map<string, Gap>();

  constructor(limits: Readonly<Record<string, ChannelLimit>>, nowMs: number) {
    for (const [channel, limit] of Object.entries(limits)) {
      if (limit.perSecond !== undefined && limit.perSecond > 0) {
        // A burst of at most one second's worth, so a quiet channel does not store up a flood.
        const capacity = Math.max(1, limit.perSecond);
        this.buckets.set(channel, {
          perMs: limit.perSecond / 1000,
          capacity,
          tokens: capacity,
          at: nowMs,
        });
      }
      if (limit.recipientGapMs !== undefined && limit.recipientGapMs > 0) {
        this.gaps.set(channel, {
          gapMs: limit.recipientGapMs,
          lastSent: new Map(),
          pruneAt: PRUNE_AT,
        });
      }
    }
  }

  /** Whether any channel has a rate; without one, claims need no channel filter. */
  get hasRates(): boolean {
    return this.buckets.size > 0;
  }

  /**
   * The channels that may not send now, and in how many ms the first of them may again; empty
   * when every rated channel has a token.
   */
  blocked(nowMs: number): { channels: string[]; retryInMs: number } {
    const channels: string[] = [];
    let retryInMs = Number.POSITIVE_INFINITY;
    for (const [channel, bucket] of this.buckets) {
      refill(bucket, nowMs);
      if (bucket.tokens >= 1) continue;
      channels.push(channel);
      retryInMs = Math.min(retryInMs, Math.ceil((1 - bucket.tokens) / bucket.perMs));
    }
    return { channels, retryInMs };
  }

  /**
   * Spends a token of the channel's bucket and returns 0; with no token left, spends nothing and
   * returns in how many ms the next one comes.
   */
  take(channel: string, nowMs: number): number {
    const bucket = this.buckets.get(channel);
    if (!bucket) return 0;
    refill(bucket, nowMs);
    if (bucket.tokens < 1) return Math.ceil((1 - bucket.tokens) / bucket.perMs);
    bucket.tokens -= 1;
    return 0;
  }

  /**
   * When a message to this address may go, if it must wait for the recipient's gap; otherwise
   * undefined, and the send is counted from now.
   */
  holdUntil(channel: string, address: string, nowMs: number): number | undefined {
    const gap = this.gaps.get(channel);
    if (!gap) return undefined;
    const last = gap.lastSent.get(address);
    if (last !== undefined && nowMs - last < gap.gapMs) return last + gap.gapMs;
    gap.lastSent.set(address, nowMs);
    if (gap.lastSent.size > gap.pruneAt) prune(gap, nowMs);
    return undefined;
  }
}

interface Bucket {
  perMs: number;
  capacity: number;
  tokens: number;
  at: number;
}

interface Gap {
  gapMs: number;
  lastSent: Map<string, number>;
  /** The size that starts the next pruning: twice what the last one kept, so it stays rare. */
  pruneAt: number;
}

// Past this many addresses, those whose gap has passed are forgotten.
const PRUNE_AT = 10_000;

function refill(bucket: Bucket, nowMs: number): void {
  const elapsed = Math.max(0, nowMs - bucket.at);
  bucket.tokens = Math.min(bucket.capacity, bucket.tokens + elapsed * bucket.perMs);
  bucket.at = nowMs;
}

function prune(gap: Gap, nowMs: number): void {
  for (const [address, at] of gap.lastSent) {
    if (nowMs - at >= gap.gapMs) gap.lastSent.delete(address);
  }
  gap.pruneAt = Math.max(PRUNE_AT, gap.lastSent.size * 2);
}
