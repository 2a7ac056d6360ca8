export { IncidentStore } from './incident-store.js';
export type * from './types.js';
