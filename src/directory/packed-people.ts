import type { AudienceSelector, People, Person } from './types.js';

// The fields kept per person, in this order, joined by FIELD; each record starts with RECORD,
// so an id or an address can be found by searching the text for it between separators. Roles,
// groups and tags are kept once per distinct combination instead.
const FIELDS = ['id', 'name', 'phone', 'email', 'chat', 'locale', 'timeZone'] as const;
const NAME = 1;
const PHONE = 2;
const EMAIL = 3;
const CHAT = 4;
const LOCALE = 5;
const TIME_ZONE = 6;
const FIELD = '\u001f';
const RECORD = '\u001e';

/** What a packed record holds: every field as text, lists as their `;`-separated cell. */
export type PackedRecord = Record<(typeof FIELDS)[number] | 'roles' | 'groups' | 'tags', string>;

/**
 * What every view of people offers on top of `length` and `person`: reading them in order, with
 * the indexes arrays take (negative counts from the end), so it can stand where `Person[]` did.
 */
abstract class PeopleView implements People {
  abstract readonly length: number;
  /** The person at `position`, 0 ≤ position < length, made for the caller. */
  protected abstract person(position: number): Person;

  at(index: number): Person | undefined {
    const position = toPosition(index, this.length);
    return position >= 0 && position < this.length ? this.person(position) : undefined;
  }

  *[Symbol.iterator](): Iterator<Person> {
    for (let position = 0; position < this.length; position++) yield this.person(position);
  }

  slice(start?: number, end?: number): Person[] {
    const from = Math.max(0, toPosition(start ?? 0, this.length));
    const to = Math.min(
      this.length,
      end === undefined ? this.length : toPosition(end, this.length),
    );
    const people: Person[] = [];
    for (let position = from; position < to; position++) people.push(this.person(position));
    return people;
  }

  map<T>(transform: (person: Person, index: number) => T): T[] {
    return Array.from(this, transform);
  }

  find(predicate: (person: Person) => boolean): Person | undefined {
    for (const person of this) if (predicate(person)) return person;
    return undefined;
  }

  some(predicate: (person: Person) => boolean): boolean {
    return this.find(predicate) !== undefined;
  }

  filter(predicate: (person: Person) => boolean): Person[] {
    const people: Person[] = [];
    for (const person of this) if (predicate(person)) people.push(person);
    return people;
  }

  /** As JSON, the people themselves, as an array would be. */
  toJSON(): Person[] {
    return [...this];
  }
}

/** An array index as `Array.prototype.at` and `slice` read it: truncated, negative from the end. */
function toPosition(index: number, length: number): number {
  const whole = Math.trunc(index) || 0;
  return whole < 0 ? length + whole : whole;
}

interface Combination {
  roles: string[];
  groups: string[];
  tags: string[];
}

/**
 * Many people kept as one string with an index of offsets, for directories of a customer base
 * or a whole staff: 100,000 people take about 4 MB instead of 30 MB of objects in the
 * JavaScript heap. A `Person` is made when asked for and is garbage once used; roles, groups
 * and tags are shared lists, one per distinct combination.
 */
export class PackedPeople extends PeopleView {
  private readonly text: string;
  /** Where each record starts in `text`, and one more entry for the end. */
  private readonly starts: Int32Array;
  /** The index into `combinations` of each person's roles, groups and tags. */
  private readonly combinationOf: Int32Array;
  private readonly combinations: readonly Combination[];

  constructor(parts: {
    text: string;
    starts: Int32Array;
    combinationOf: Int32Array;
    combinations: readonly Combination[];
  }) {
    super();
    this.text = parts.text;
    this.starts = parts.starts;
    this.combinationOf = parts.combinationOf;
    this.combinations = parts.combinations;
  }

  get length(): number {
    return this.starts.length - 1;
  }

  protected person(index: number): Person {
    const cells = this.cells(index);
    const combination = this.combinations[this.combinationOf[index] ?? 0];
    const person: Person = {
      id: cells[0] ?? '',
      name: cells[NAME] ?? '',
      locale: cells[LOCALE] || 'en',
      timeZone: cells[TIME_ZONE] || 'UTC',
      roles: combination?.roles ?? [],
      groups: combination?.groups ?? [],
      tags: combination?.tags ?? [],
    };
    const [phone, email, chat] = [cells[PHONE], cells[EMAIL], cells[CHAT]];
    if (phone) person.phone = phone;
    if (email) person.email = email;
    if (chat) person.chat = chat;
    return person;
  }

  /** The person with this id, found by searching the text rather than making every person. */
  byId(id: string): Person | undefined {
    if (id === '' || id.includes(FIELD) || id.includes(RECORD)) return undefined;
    const found = this.text.indexOf(`${RECORD}${id}${FIELD}`);
    return found < 0 ? undefined : this.at(this.recordAt(found));
  }

  /** Everyone whose phone or email is exactly `value`, found by searching the text. */
  withAddress(field: 'phone' | 'email', value: string): Person[] {
    const found: Person[] = [];
    if (value === '' || value.includes(FIELD) || value.includes(RECORD)) return found;
    const needle = `${FIELD}${value}${FIELD}`;
    let last = -1;
    for (let at = this.text.indexOf(needle); at >= 0; at = this.text.indexOf(needle, at + 1)) {
      const index = this.recordAt(at);
      if (index === last) continue;
      last = index;
      const person = this.at(index);
      // The same text in another column (a name that reads like a number) is not a match.
      if (person?.[field] === value) found.push(person);
    }
    return found;
  }

  /** Everyone with one of the roles, groups or tags: their positions, each made when read. */
  select(selector: AudienceSelector): People {
    const roles = new Set(selector.roles ?? []);
    const groups = new Set(selector.groups ?? []);
    const tags = new Set(selector.tags ?? []);
    const matches = this.combinations.map(
      (combination) =>
        combination.roles.some((role) => roles.has(role)) ||
        combination.groups.some((group) => groups.has(group)) ||
        combination.tags.some((tag) => tags.has(tag)),
    );
    const chosen: number[] = [];
    for (let index = 0; index < this.length; index++) {
      if (matches[this.combinationOf[index] ?? 0]) chosen.push(index);
    }
    return new SelectedPeople(this, Int32Array.from(chosen));
  }

  /** Every role someone holds. */
  heldRoles(): Set<string> {
    return new Set(this.combinations.flatMap((combination) => combination.roles));
  }

  private cells(index: number): string[] {
    return this.text.slice((this.starts[index] ?? 0) + 1, this.starts[index + 1]).split(FIELD);
  }

  /** The record that holds text offset `at`. */
  private recordAt(at: number): number {
    let low = 0;
    let high = this.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if ((this.starts[middle] ?? 0) <= at) low = middle;
      else high = middle - 1;
    }
    return low;
  }
}

/** Takes people for a `PackedPeople` one at a time. */
export class PackedPeopleBuilder {
  private readonly chunks: string[] = [];
  private readonly starts: number[] = [];
  private readonly combinationOf: number[] = [];
  private readonly combinations: Combination[] = [];
  private readonly combinationIndex = new Map<string, number>();
  private length = 0;

  /** `toList` turns a cell of roles, groups or tags into its list. */
  constructor(private readonly toList: (cell: string) => string[]) {}

  /** Takes one person; the caller has refused cells with control characters (the separators). */
  add(record: PackedRecord): void {
    // JSON, not a separator: no cell text can make two different combinations one key.
    const key = JSON.stringify([record.roles, record.groups, record.tags]);
    let combination = this.combinationIndex.get(key);
    if (combination === undefined) {
      combination = this.combinations.length;
      this.combinations.push({
        roles: this.toList(record.roles),
        groups: this.toList(record.groups),
        tags: this.toList(record.tags),
      });
      this.combinationIndex.set(key, combination);
    }
    const text = `${RECORD}${FIELDS.map((field) => record[field]).join(FIELD)}`;
    this.starts.push(this.length);
    this.combinationOf.push(combination);
    this.chunks.push(text);
    this.length += text.length;
  }

  build(): PackedPeople {
    return new PackedPeople({
      text: this.chunks.join(''),
      starts: Int32Array.from([...this.starts, this.length]),
      combinationOf: Int32Array.from(this.combinationOf),
      combinations: this.combinations,
    });
  }
}

/** The people an audience selects from a `PackedPeople`: their positions, nothing more. */
class SelectedPeople extends PeopleView {
  constructor(
    private readonly all: PackedPeople,
    private readonly positions: Int32Array,
  ) {
    super();
  }

  get length(): number {
    return this.positions.length;
  }

  protected person(index: number): Person {
    return this.all.at(this.positions[index] as number) as Person;
  }
}
