export { loadPlaybook, messageKey, parsePlaybook, validatePlaybookText } from './load-playbook.js';
export type { CompiledMessage, LoadedPlaybook, LoadPlaybookOptions } from './load-playbook.js';
export { checkSchema } from './check-schema.js';
export type { SchemaName } from './check-schema.js';
export { parseDuration } from './duration.js';
export { formatLocation, locate, parseYamlSource } from './yaml-source.js';
export type { YamlSource } from './yaml-source.js';
export type * from './types.js';
