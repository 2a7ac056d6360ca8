/**
 * Tocsin's library: playbooks, the directory, templates, channels, the store and the engine.
 * `runner/` wires it to the world; nothing here reads the environment, prints or exits.
 *
 * @module
 */

// errors
export {
  ChannelError,
  ConfigError,
  EngineError,
  ERROR_CODES,
  PlaybookSyntaxError,
  PlaybookValidationError,
  StoreError,
  TemplateError,
  TocsinError,
} from './errors.js';
export type { ErrorCode, Problem, SourceLocation } from './errors.js';

// logging and time
export { noopLogger } from './logger.js';
export type { LogFields, Logger } from './logger.js';
export { ManualClock, systemClock, toIsoUtc } from './clock.js';
export type { Clock } from './clock.js';

// playbook
export {
  checkSchema,
  formatLocation,
  loadPlaybook,
  locate,
  parseDuration,
  parsePlaybook,
  parseYamlSource,
  validatePlaybookText,
} from './playbook/index.js';
export type {
  ChannelKind,
  LoadedPlaybook,
  Playbook,
  PlaybookDefinition,
  SchemaName,
  Stage,
  YamlSource,
} from './playbook/index.js';

// directory
export { checkAudiences, loadDirectory, parseDirectory, selectPeople } from './directory/index.js';
export type { Directory, Person } from './directory/index.js';

// templates
export { TemplateEngine } from './template/index.js';

// triggers
export { parseAlertmanagerPayload } from './triggers/index.js';
export type { AlertmanagerPayload, VariableValues } from './triggers/index.js';

// channels
export { createSmtpEmailChannel, createTwilioSmsChannel } from './channels/index.js';

// sms
export { countSmsSegments } from './sms/index.js';
export type { SmsSegments } from './sms/index.js';
export type {
  ChannelAdapter,
  OutgoingMessage,
  SendReceipt,
  SmtpEmailConfig,
  TwilioSmsConfig,
} from './channels/index.js';

// store
export { IncidentStore } from './store/index.js';
export type {
  AuditRecord,
  IncidentRecord,
  IncidentStatus,
  MessageStatus,
  OutboxRecord,
} from './store/index.js';

// engine
export { createDispatcher, createEngine, Dispatcher, Engine } from './engine/index.js';
export type { EngineDeps, IncidentContext, TriggerOutcome } from './engine/index.js';
