import type { ChannelKind } from '../playbook/index.js';

/** One message, ready for a provider. */
export interface OutgoingMessage {
  /** The outbox row id; providers that echo a reference get this one. */
  id: number;
  incidentId: string;
  address: string;
  subject: string | null;
  body: string;
}

/** What a provider said when it took a message. */
export interface SendReceipt {
  providerId: string;
  /** Which provider took it, where a channel has several (failover); the channel's otherwise. */
  provider?: string;
  /** The provider will report delivery (a status callback or webhook) for this message. */
  receiptExpected?: boolean;
}

/**
 * A way to reach people. `send` resolves when the provider accepted the message, and throws a
 * `ChannelError` whose `retryable` says whether the same send may succeed later.
 */
export interface ChannelAdapter {
  readonly kind: ChannelKind;
  readonly provider: string;
  send(message: OutgoingMessage, signal: AbortSignal): Promise<SendReceipt>;
  /**
   * After an ambiguous failure, asks the provider which messages it took to the same address
   * with the same text since `since`, newest first; empty when none. Throws when the provider
   * cannot be asked. Channels without it leave such a message unknown rather than risk sending
   * it twice.
   */
  reconcile?(message: OutgoingMessage, since: Date, signal: AbortSignal): Promise<SendReceipt[]>;
  close(): Promise<void>;
}
