/**
 * The light half of Tocsin's public API: reading and checking playbooks, directories and
 * configs, with no engine, store or channels behind it. `tocsin validate` imports this face
 * instead of `index.ts` so it does not load SQLite, XState or the HTTP clients it never uses;
 * `index.ts` re-exports all of it.
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

// playbook
export {
  channelTrust,
  checkSchema,
  DEFAULT_CHANNEL_TRUST,
  formatLocation,
  loadPlaybook,
  locate,
  parseDuration,
  parsePlaybook,
  parsePlaybookSource,
  parseYamlSource,
  SENSITIVITY_ORDER,
  validatePlaybookText,
} from './playbook/index.js';
export type {
  ChannelKind,
  CompiledMessage,
  CompiledVariant,
  LoadedPlaybook,
  Playbook,
  PlaybookDefinition,
  SchemaName,
  Sensitivity,
  Stage,
  YamlSource,
} from './playbook/index.js';

// directory
export {
  checkAudiences,
  findPerson,
  findPersonByAddress,
  heldRoles,
  loadDirectory,
  parseDirectory,
  parseDirectorySource,
  parseCsvDirectory,
  selectPeople,
} from './directory/index.js';
export type { Directory, People, Person } from './directory/index.js';

// templates
export { TemplateEngine } from './template/index.js';

// sms
export { countSmsSegments, transliterateToGsm } from './sms/index.js';
export type { SmsSegments } from './sms/index.js';
