export { addressOf } from './address-of.js';
export { checkAudiences } from './check-audiences.js';
export { parseCsvDirectory } from './csv-directory.js';
export {
  findPerson,
  findPersonByAddress,
  heldRoles,
  loadDirectory,
  parseDirectory,
  parseDirectorySource,
  selectPeople,
} from './load-directory.js';
export type { AudienceSelector, Directory, People, Person } from './types.js';
