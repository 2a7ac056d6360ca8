/** One message a stand-in received, as the provider saw it. */
export interface ReceivedMessage {
  seq: number;
  channel: 'sms' | 'email' | 'whatsapp' | 'chat';
  provider: string;
  providerId: string;
  to: string;
  from: string;
  subject: string | null;
  body: string;
  /** An email's HTML part, where it had one. */
  html?: string;
  receivedAt: string;
  /** When it arrived, in milliseconds since the epoch with sub-millisecond precision. */
  receivedAtMs: number;
}

/** Keeps what the stand-ins received, in arrival order. */
export class MessageRecorder {
  private readonly messages: ReceivedMessage[] = [];

  record(message: Omit<ReceivedMessage, 'seq' | 'receivedAt' | 'receivedAtMs'>): ReceivedMessage {
    const receivedAtMs = performance.timeOrigin + performance.now();
    const received = {
      ...message,
      seq: this.messages.length + 1,
      receivedAt: new Date(receivedAtMs).toISOString(),
      receivedAtMs,
    };
    this.messages.push(received);
    return received;
  }

  list(): readonly ReceivedMessage[] {
    return this.messages;
  }

  /** How many arrived, and when the first and the last did (and the `nth`, if asked). */
  stats(nth?: number): {
    count: number;
    firstAtMs: number | null;
    lastAtMs: number | null;
    nthAtMs: number | null;
  } {
    return {
      count: this.messages.length,
      firstAtMs: this.messages[0]?.receivedAtMs ?? null,
      lastAtMs: this.messages.at(-1)?.receivedAtMs ?? null,
      nthAtMs: nth === undefined ? null : (this.messages[nth - 1]?.receivedAtMs ?? null),
    };
  }
}
