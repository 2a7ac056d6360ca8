import type { ChannelKind } from '../playbook/index.js';
import type { Person } from './types.js';

/**
 * Where a person is reached on a channel; SMS and WhatsApp use the mobile number, chat the name
 * of a room's webhook.
 */
export function addressOf(person: Person, channel: ChannelKind): string | undefined {
  switch (channel) {
    case 'sms':
    case 'whatsapp':
      return person.phone;
    case 'email':
      return person.email;
    case 'chat':
      return person.chat;
  }
}
