export { parseAlertmanagerPayload } from './alertmanager.js';
export type { AlertmanagerAlert, AlertmanagerPayload } from './alertmanager.js';
export { isWebhookSource, WEBHOOK_SOURCES } from './sources.js';
export type { WebhookSource } from './sources.js';
export { verifyGrafanaSignature, verifyPagerDutySignature } from './signatures.js';
export { convertVariables, extractVariables, readPath } from './variables.js';
export type { VariableValues } from './variables.js';
