import { isMap, isScalar, isSeq, LineCounter, parseDocument, visit } from 'yaml';
import type { Document, Node, Pair } from 'yaml';

import { PlaybookSyntaxError } from '../errors.js';
import type { Problem, SourceLocation } from '../errors.js';

/** Largest YAML document Tocsin reads; a playbook is far smaller. */
export const MAX_SOURCE_BYTES = 1024 * 1024;

/** A parsed YAML file that keeps its document, so any value can be traced to `file:line:col`. */
export interface YamlSource {
  file: string;
  text: string;
  value: unknown;
  document: Document.Parsed;
  lines: LineCounter;
}

/** Path segments of a JSON pointer, as ajv reports them in `instancePath`. */
export type PathSegments = readonly (string | number)[];

/**
 * Parses YAML text, keeping node positions. Duplicate keys and alias expansion beyond a small
 * budget (alias bombs) are syntax errors.
 *
 * @throws PlaybookSyntaxError with code E_PLAYBOOK_SYNTAX or E_PLAYBOOK_DUPLICATE_KEY
 */
export function parseYamlSource(text: string, file: string): YamlSource {
  if (Buffer.byteLength(text) > MAX_SOURCE_BYTES) {
    throw new PlaybookSyntaxError(
      'E_PLAYBOOK_SYNTAX',
      `${file}:1:1 the file is larger than ${MAX_SOURCE_BYTES} bytes; split it or remove unused parts`,
      { location: { file, line: 1, col: 1 } },
    );
  }

  const lines = new LineCounter();
  const document = parseDocument(text, {
    lineCounter: lines,
    uniqueKeys: true,
    prettyErrors: false,
  });
  const error = document.errors[0];
  if (error) {
    const location = toLocation(file, lines, error.pos[0]);
    const isDuplicate = error.code === 'DUPLICATE_KEY';
    const hint = isDuplicate ? 'remove or rename one of the two keys' : 'fix the YAML syntax';
    throw new PlaybookSyntaxError(
      isDuplicate ? 'E_PLAYBOOK_DUPLICATE_KEY' : 'E_PLAYBOOK_SYNTAX',
      `${formatLocation(location)} ${firstLine(error.message)}; ${hint}`,
      { location, cause: error },
    );
  }

  try {
    const value: unknown = document.toJS({ maxAliasCount: 100 });
    return { file, text, value, document, lines };
  } catch (cause) {
    // Only a broken document gets the walk that finds which alias has no anchor.
    const unresolved = findUnresolvedAlias(document);
    if (unresolved) {
      const location = toLocation(file, lines, unresolved.offset);
      throw new PlaybookSyntaxError(
        'E_PLAYBOOK_SYNTAX',
        `${formatLocation(location)} alias "*${unresolved.name}" has no anchor "&${unresolved.name}" before it; define the anchor or write the value out`,
        { location, cause },
      );
    }
    const location = { file, line: 1, col: 1 };
    throw new PlaybookSyntaxError(
      'E_PLAYBOOK_SYNTAX',
      `${formatLocation(location)} the document expands too many aliases; write the values out`,
      { location, cause },
    );
  }
}

/** How to place a problem: at the value, or at the key that names it. */
export type LocateMode = 'value' | 'key';

/** Finds `file:line:col` of the node at `path`, or of its nearest existing ancestor. */
export function locate(
  source: YamlSource,
  path: PathSegments,
  mode: LocateMode = 'value',
): SourceLocation {
  let node: Node | null | undefined = source.document.contents;
  let keyNode: Node | undefined;

  for (const segment of path) {
    const child = childOf(node, segment);
    if (!child) break;
    node = child.value;
    keyNode = child.key;
  }

  const target = mode === 'key' && keyNode ? keyNode : (node ?? keyNode);
  const offset = target?.range?.[0] ?? 0;
  return toLocation(source.file, source.lines, offset);
}

/** The YAML node at `path`, if every segment exists. */
export function nodeAt(source: YamlSource, path: PathSegments): Node | undefined {
  let node: Node | null | undefined = source.document.contents;
  for (const segment of path) {
    const child = childOf(node, segment);
    if (!child) return undefined;
    node = child.value;
  }
  return node ?? undefined;
}

/** Builds a problem placed at `path`. */
export function problemAt(
  source: YamlSource,
  path: PathSegments,
  code: Problem['code'],
  message: string,
  mode: LocateMode = 'value',
): Problem {
  return { code, message, location: locate(source, path, mode) };
}

/** `file:line:col` as printed in every message. */
export function formatLocation(location: SourceLocation): string {
  return `${location.file}:${location.line}:${location.col}`;
}

/** Splits an ajv instance path (`/stages/3/after`) into segments, unescaping `~1` and `~0`. */
export function toPathSegments(pointer: string): (string | number)[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((part) => (/^\d+$/.test(part) ? Number(part) : part));
}

function findUnresolvedAlias(
  document: Document.Parsed,
): { name: string; offset: number } | undefined {
  let found: { name: string; offset: number } | undefined;
  visit(document, {
    Alias(_key, alias) {
      if (alias.resolve(document) !== undefined) return undefined;
      found = { name: alias.source, offset: alias.range?.[0] ?? 0 };
      return visit.BREAK;
    },
  });
  return found;
}

function childOf(
  node: Node | null | undefined,
  segment: string | number,
): { key: Node | undefined; value: Node | null | undefined } | undefined {
  if (isMap(node)) {
    const pair = node.items.find(
      (item: Pair) => isScalar(item.key) && String(item.key.value) === String(segment),
    );
    if (!pair) return undefined;
    return { key: pair.key as Node, value: pair.value as Node | null };
  }
  if (isSeq(node) && typeof segment === 'number') {
    const item = node.items[segment] as Node | undefined;
    return item ? { key: undefined, value: item } : undefined;
  }
  return undefined;
}

function toLocation(file: string, lines: LineCounter, offset: number): SourceLocation {
  const position = lines.linePos(offset);
  return { file, line: position.line, col: position.col };
}

function firstLine(message: string): string {
  const line = message.split('\n')[0] ?? message;
  return line.replace(/ at line \d+, column \d+:?$/, '');
}
