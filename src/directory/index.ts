export { checkAudiences } from './check-audiences.js';
export { loadDirectory, parseDirectory, selectPeople } from './load-directory.js';
export type { AudienceSelector, Directory, Person } from './types.js';
