export type { ChannelAdapter, OutgoingMessage, SendReceipt } from './channel.js';
export { createTwilioSmsChannel } from './twilio-sms.js';
export type { TwilioSmsConfig } from './twilio-sms.js';
export { createSmtpEmailChannel } from './smtp-email.js';
export type { SmtpEmailConfig } from './smtp-email.js';
export { isTwilioSignatureValid, readTwilioForm, twilioSignature } from './twilio-signature.js';
export type { TwilioParams } from './twilio-signature.js';
export { createWhatsAppCloudChannel } from './whatsapp-cloud.js';
export type { WhatsAppCloudConfig } from './whatsapp-cloud.js';
