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

/** The people Tocsin may tell. */
export interface Directory {
  file: string;
  people: Person[];
}

/** How an audience picks people: anyone with one of the roles, in one of the groups, or with one of the tags. */
export interface AudienceSelector {
  roles?: string[];
  groups?: string[];
  tags?: string[];
}
