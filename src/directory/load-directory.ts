import { readFile } from 'node:fs/promises';

import { IANAZone } from 'luxon';

import { PlaybookValidationError, TocsinError } from '../errors.js';
import type { Problem } from '../errors.js';
import { checkSchema, locate, parseYamlSource } from '../playbook/index.js';
import type { ChannelKind, YamlSource } from '../playbook/index.js';
import { parseCsvDirectory } from './csv-directory.js';
import { addressOf } from './address-of.js';
import { PackedPeople } from './packed-people.js';
import type { AudienceSelector, Directory, People, Person } from './types.js';

interface PersonDefinition {
  id: string;
  name: string;
  phone?: string;
  email?: string;
  chat?: string;
  locale?: string;
  timeZone?: string;
  roles?: string[];
  groups?: string[];
  tags?: string[];
}

/**
 * Reads and checks a directory file: YAML, or CSV when its name ends in .csv (for directories
 * larger than a YAML file may be).
 *
 * @throws PlaybookSyntaxError when the YAML does not parse
 * @throws PlaybookValidationError with E_PLAYBOOK_SCHEMA or E_DIRECTORY_DUPLICATE_ID problems
 */
export async function loadDirectory(file: string): Promise<Directory> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new TocsinError('E_PLAYBOOK_READ', `${file} cannot be read; check the path`, { cause });
  }
  return file.toLowerCase().endsWith('.csv')
    ? parseCsvDirectory(text, file)
    : parseDirectory(text, file);
}

/** Parses and checks directory text. */
export function parseDirectory(text: string, file: string): Directory {
  return parseDirectorySource(parseYamlSource(text, file));
}

/** Checks an already parsed directory document. */
export function parseDirectorySource(source: YamlSource): Directory {
  const { file } = source;
  const schemaProblems = checkSchema('directory', source);
  if (schemaProblems.length > 0) throw new PlaybookValidationError(file, schemaProblems);

  const definitions = (source.value as { people: PersonDefinition[] }).people;
  const problems: Problem[] = [];
  const seen = new Set<string>();
  definitions.forEach((person, index) => {
    if (seen.has(person.id)) {
      problems.push({
        code: 'E_DIRECTORY_DUPLICATE_ID',
        message: `person id "${person.id}" is used twice; give each person their own id`,
        location: locate(source, ['people', index, 'id']),
      });
    }
    seen.add(person.id);
    if (person.timeZone !== undefined && !IANAZone.isValidZone(person.timeZone)) {
      problems.push({
        code: 'E_PLAYBOOK_SCHEMA',
        message: `"${person.timeZone}" is not an IANA time zone; write it like Europe/Berlin or America/New_York`,
        location: locate(source, ['people', index, 'timeZone']),
      });
    }
  });
  if (problems.length > 0) throw new PlaybookValidationError(file, problems);

  return { file, people: definitions.map(toPerson) };
}

// Selections are asked for again and again (each part of a large stage): kept per directory,
// which never changes once loaded.
const selections = new WeakMap<Directory, Map<string, People>>();

/** The people an audience selects, in directory order. */
export function selectPeople(directory: Directory, selector: AudienceSelector): People {
  const key = JSON.stringify([selector.roles ?? [], selector.groups ?? [], selector.tags ?? []]);
  let cache = selections.get(directory);
  if (!cache) {
    cache = new Map();
    selections.set(directory, cache);
  }
  const cached = cache.get(key);
  if (cached) return cached;
  const selected =
    directory.people instanceof PackedPeople
      ? directory.people.select(selector)
      : filterPeople(directory.people, selector);
  cache.set(key, selected);
  return selected;
}

function filterPeople(people: People, selector: AudienceSelector): Person[] {
  const roles = new Set(selector.roles ?? []);
  const groups = new Set(selector.groups ?? []);
  const tags = new Set(selector.tags ?? []);
  return people.filter(
    (person) =>
      person.roles.some((role) => roles.has(role)) ||
      person.groups.some((group) => groups.has(group)) ||
      person.tags.some((tag) => tags.has(tag)),
  );
}

/** The person with this id. */
export function findPerson(directory: Directory, id: string): Person | undefined {
  const { people } = directory;
  return people instanceof PackedPeople
    ? people.byId(id)
    : people.find((person) => person.id === id);
}

/** The first person whose phone (SMS, WhatsApp) or email is `address`. */
export function findPersonByAddress(
  directory: Directory,
  channel: ChannelKind,
  address: string,
): Person | undefined {
  const { people } = directory;
  const field = channel === 'email' ? 'email' : channel === 'chat' ? undefined : 'phone';
  if (people instanceof PackedPeople && field !== undefined) {
    return people.withAddress(field, address)[0];
  }
  return people.find((person) => addressOf(person, channel) === address);
}

/** Every role someone in the directory holds. */
export function heldRoles(directory: Directory): Set<string> {
  const { people } = directory;
  if (people instanceof PackedPeople) return people.heldRoles();
  const roles = new Set<string>();
  for (const person of people) for (const role of person.roles) roles.add(role);
  return roles;
}

function toPerson(definition: PersonDefinition): Person {
  const person: Person = {
    id: definition.id,
    name: definition.name,
    locale: definition.locale ?? 'en',
    timeZone: definition.timeZone ?? 'UTC',
    roles: definition.roles ?? [],
    groups: definition.groups ?? [],
    tags: definition.tags ?? [],
  };
  if (definition.phone !== undefined) person.phone = definition.phone;
  if (definition.email !== undefined) person.email = definition.email;
  if (definition.chat !== undefined) person.chat = definition.chat;
  return person;
}
