/**
 * Tocsin's library: playbooks, the directory, templates, channels, the store and the engine.
 * `runner/` wires it to the world; nothing here reads the environment, prints or exits.
 *
 * @module
 */

// errors, playbook, directory, templates, sms: the light half, see checks.ts
export * from './checks.js';

// logging and time
export { noopLogger } from './logger.js';
export type { LogFields, Logger } from './logger.js';
export { ManualClock, systemClock, toIsoUtc } from './clock.js';
export type { Clock } from './clock.js';

// triggers
export {
  isWebhookSource,
  parseAlertmanagerPayload,
  verifyGrafanaSignature,
  verifyPagerDutySignature,
  WEBHOOK_SOURCES,
} from './triggers/index.js';
export type { AlertmanagerPayload, VariableValues, WebhookSource } from './triggers/index.js';

// channels
export {
  checkWebhookSignature,
  createChatWebhooksChannel,
  createFailoverChannel,
  createSmtpEmailChannel,
  createTwilioSmsChannel,
  createVonageSmsChannel,
  createWhatsAppCloudChannel,
  isTwilioSignatureValid,
  readTwilioForm,
  twilioSignature,
  SIGNATURE_HEADERS,
  webhookSignature,
} from './channels/index.js';
export type {
  ChannelAdapter,
  ChatWebhook,
  ChatWebhooksConfig,
  SignatureCheck,
  OutgoingMessage,
  SendReceipt,
  SmtpEmailConfig,
  TwilioParams,
  TwilioSmsConfig,
  VonageSmsConfig,
  WhatsAppCloudConfig,
} from './channels/index.js';

// store
export { IncidentStore } from './store/index.js';
export type {
  AuditRecord,
  DeliveryReceipt,
  IncidentRecord,
  IncidentStatus,
  LeaseRecord,
  MessageStatus,
  OutboxRecord,
} from './store/index.js';

// engine
export {
  createDispatcher,
  createEngine,
  Dispatcher,
  Engine,
  EXPANSION_FIRST_PART,
  EXPANSION_PART,
  interpretReply,
  RateLimits,
} from './engine/index.js';
export type {
  ChannelLimit,
  EngineDeps,
  FallbackReason,
  IncidentContext,
  ReplyIntent,
  ReplyOutcome,
  TriggerOutcome,
} from './engine/index.js';
