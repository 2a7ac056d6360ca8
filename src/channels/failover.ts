import { ChannelError } from '../errors.js';
import type { ChannelAdapter, OutgoingMessage, SendReceipt } from './channel.js';

/** How long a provider that failed for the whole channel is passed over. */
const DEFAULT_COOL_DOWN_MS = 60_000;

/**
 * One channel kind over several providers, tried in order: a send that the first provider turns
 * away (it is down, throttles, or refuses the account) goes to the next at once. A provider
 * that refused the account or could not be reached is passed over for a cool-down, so a mass
 * send does not knock at a dead door for every message.
 *
 * A refusal about the recipient (an invalid or opted-out number) is not failed over: the next
 * provider would refuse the same number; the person's next channel is the engine's fallback.
 * An ambiguous failure is not failed over either: the first provider may have taken the message.
 */
export function createFailoverChannel(
  providers: readonly ChannelAdapter[],
  options: {
    coolDownMs?: number;
    now?: () => number;
    /** Told when a send moves on from a provider, and whether that one is now passed over. */
    onFailover?: (event: {
      from: string;
      to: string;
      error: ChannelError;
      passedOverMs: number | undefined;
    }) => void;
  } = {},
): ChannelAdapter {
  const [first] = providers;
  if (!first) throw new Error('a failover channel needs at least one provider');
  if (providers.length === 1) return first;
  const coolDownMs = options.coolDownMs ?? DEFAULT_COOL_DOWN_MS;
  const now = options.now ?? Date.now;
  const downUntil = new Map<ChannelAdapter, number>();
  // Which provider left a message in doubt, so that reconciling asks that one.
  const doubtful = new Map<number, ChannelAdapter>();

  async function send(message: OutgoingMessage, signal: AbortSignal): Promise<SendReceipt> {
    const at = now();
    const usable = providers.filter((provider) => (downUntil.get(provider) ?? 0) <= at);
    // All down: try them anyway, in order, rather than fail without asking.
    const order = usable.length > 0 ? usable : providers;
    let lastError: unknown;
    for (const [index, provider] of order.entries()) {
      try {
        const receipt = await provider.send(message, signal);
        doubtful.delete(message.id);
        return { ...receipt, provider: provider.provider };
      } catch (error) {
        lastError = error;
        if (!(error instanceof ChannelError)) throw error;
        if (error.ambiguous) {
          doubtful.set(message.id, provider);
          throw error;
        }
        if (error.scope === 'recipient' || (!error.retryable && error.scope !== 'channel')) {
          throw error;
        }
        // Refused the account, or not reachable at all: pass it over for a while. A throttle or
        // a server error moves only this message on.
        const isDown = error.scope === 'channel' || error.status === undefined;
        if (isDown) downUntil.set(provider, now() + coolDownMs);
        if (signal.aborted) throw error;
        const next = order[index + 1];
        if (next) {
          options.onFailover?.({
            from: provider.provider,
            to: next.provider,
            error,
            passedOverMs: isDown ? coolDownMs : undefined,
          });
        }
      }
    }
    throw lastError;
  }

  async function reconcile(
    message: OutgoingMessage,
    since: Date,
    signal: AbortSignal,
  ): Promise<SendReceipt[]> {
    const provider = doubtful.get(message.id);
    // Not known which provider had it (a restart in between): every one must be asked.
    const asked = provider ? [provider] : providers;
    const found: SendReceipt[] = [];
    for (const candidate of asked) {
      if (!candidate.reconcile) {
        throw new ChannelError(
          'E_CHANNEL_OUTCOME_UNKNOWN',
          `${candidate.provider} cannot be asked which messages it took`,
          { retryable: false },
        );
      }
      const receipts = await candidate.reconcile(message, since, signal);
      found.push(...receipts.map((receipt) => ({ ...receipt, provider: candidate.provider })));
    }
    doubtful.delete(message.id);
    return found;
  }

  return {
    kind: first.kind,
    provider: providers.map((provider) => provider.provider).join('+'),
    send,
    reconcile,
    close: async () => {
      await Promise.all(providers.map((provider) => provider.close()));
    },
  };
}
