import { readFile } from 'node:fs/promises';

import { IANAZone } from 'luxon';

import { PlaybookValidationError, TocsinError } from '../errors.js';
import type { Problem } from '../errors.js';
import { checkSchema, locate, parseYamlSource } from '../playbook/index.js';
import type { YamlSource } from '../playbook/index.js';
import { parseCsvDirectory } from './csv-directory.js';
import type { AudienceSelector, Directory, Person } from './types.js';

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
const selections = new WeakMap<Directory, Map<string, Person[]>>();

/** The people an audience selects, in directory order. */
export function selectPeople(directory: Directory, selector: AudienceSelector): Person[] {
  const key = JSON.stringify([selector.roles ?? [], selector.groups ?? [], selector.tags ?? []]);
  let cache = selections.get(directory);
  if (!cache) {
    cache = new Map();
    selections.set(directory, cache);
  }
  const cached = cache.get(key);
  if (cached) return cached;
  const selected = filterPeople(directory, selector);
  cache.set(key, selected);
  return selected;
}

function filterPeople(directory: Directory, selector: AudienceSelector): Person[] {
  const roles = new Set(selector.roles ?? []);
  const groups = new Set(selector.groups ?? []);
  const tags = new Set(selector.tags ?? []);
  return directory.people.filter(
    (person) =>
      person.roles.some((role) => roles.has(role)) ||
      person.groups.some((group) => groups.has(group)) ||
      person.tags.some((tag) => tags.has(tag)),
  );
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
