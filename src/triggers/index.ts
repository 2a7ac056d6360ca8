export {
  matchesAlertmanager,
  parseAlertmanagerPayload,
  toAlertmanagerDedupeKey,
} from './alertmanager.js';
export type { AlertmanagerAlert, AlertmanagerPayload } from './alertmanager.js';
export { extractVariables, readPath } from './variables.js';
export type { VariableValues } from './variables.js';
