export {
  loadPlaybook,
  parsePlaybook,
  parsePlaybookSource,
  validatePlaybookText,
} from './load-playbook.js';
export type { LoadedPlaybook, LoadPlaybookOptions } from './load-playbook.js';
export {
  channelTrust,
  compileMessages,
  DEFAULT_CHANNEL_TRUST,
  messageKey,
  SENSITIVITY_ORDER,
} from './check-messages.js';
export type { CompiledMessage, CompiledVariant } from './check-messages.js';
export { checkSchema } from './check-schema.js';
export type { SchemaName } from './check-schema.js';
export { parseDuration } from './duration.js';
export { formatLocation, locate, parseYamlSource } from './yaml-source.js';
export type { YamlSource } from './yaml-source.js';
export type * from './types.js';
