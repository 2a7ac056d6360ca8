/** One person in the directory. Personal data: never log more than the id. */
export interface Person {
  id: string;
  name: string;
  phone?: string;
  email?: string;
  /** The chat webhook (by its name in the service config) of an entry that is a team's room. */
  chat?: string;
  locale: string;
  timeZone: string;
  roles: string[];
  groups: string[];
  tags: string[];
}

/**
 * People in directory order: a plain array for a YAML directory, a packed view (each person
 * made when read) for a large CSV one, so code that reads people works with either.
 */
export interface People extends Iterable<Person> {
  readonly length: number;
  at(index: number): Person | undefined;
  slice(start?: number, end?: number): Person[];
  map<T>(transform: (person: Person, index: number) => T): T[];
  find(predicate: (person: Person) => boolean): Person | undefined;
  some(predicate: (person: Person) => boolean): boolean;
  filter(predicate: (person: Person) => boolean): Person[];
}

/** The people Tocsin may tell. */
export interface Directory {
  file: string;
  people: People;
}

/** How an audience picks people: anyone with one of the roles, in one of the groups, or with one of the tags. */
export interface AudienceSelector {
  roles?: string[];
  groups?: string[];
  tags?: string[];
}
