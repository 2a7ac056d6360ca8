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
}

/** Keeps what the stand-ins received, in arrival order. */
export class MessageRecorder {
  private readonly messages: ReceivedMessage[] = [];

  record(message: Omit<ReceivedMessage, 'seq' | 'receivedAt'>): ReceivedMessage {
    const received = {
      ...message,
      seq: this.messages.length + 1,
      receivedAt: new Date().toISOString(),
    };
    this.messages.push(received);
    return received;
  }

  list(): readonly ReceivedMessage[] {
    return this.messages;
  }
}
