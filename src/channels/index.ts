export type { ChannelAdapter, OutgoingMessage, SendReceipt } from './channel.js';
export { createTwilioSmsChannel } from './twilio-sms.js';
export type { TwilioSmsConfig } from './twilio-sms.js';
export { createSmtpEmailChannel } from './smtp-email.js';
export type { SmtpEmailConfig } from './smtp-email.js';
export { isTwilioSignatureValid, readTwilioForm, twilioSignature } from './twilio-signature.js';
export type { TwilioParams } from './twilio-signature.js';
export { createWhatsAppCloudChannel } from './whatsapp-cloud.js';
export type { WhatsAppCloudConfig } from './whatsapp-cloud.js';
export { createVonageSmsChannel } from './vonage-sms.js';
export type { VonageSmsConfig } from './vonage-sms.js';
export { createFailoverChannel } from './failover.js';
export { createChatWebhooksChannel } from './chat-webhooks.js';
export type { ChatWebhook, ChatWebhookFormat, ChatWebhooksConfig } from './chat-webhooks.js';
export {
  checkWebhookSignature,
  SIGNATURE_HEADERS,
  SIGNATURE_TOLERANCE_S,
  webhookSignature,
} from './webhook-signature.js';
export type { SignatureCheck } from './webhook-signature.js';
