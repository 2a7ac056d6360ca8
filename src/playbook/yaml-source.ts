import {
  isAlias,
  isCollection,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  visit,
} from 'yaml';
import type { Alias, Document, Node, Pair } from 'yaml';

import { PlaybookSyntaxError } from '../errors.js';
import type { Problem, SourceLocation } from '../errors.js';

/** Largest YAML document Tocsin reads; a playbook is far smaller. */
export const MAX_SOURCE_BYTES = 1024 * 1024;

/**
 * How many values aliases may expand to, as the `yaml` package counts them (`maxAliasCount`):
 * each use of an anchor counts the aliases nested inside it. A playbook needs a handful; nine
 * nested levels of ten aliases (an alias bomb, "billion laughs") would build 10^9 values.
 */
const MAX_ALIAS_EXPANSIONS = 100;

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
 * Parses YAML text, keeping node positions. Files over 1 MiB, duplicate keys and alias
 * expansion beyond a small budget (alias bombs) are syntax errors.
 *
 * @throws PlaybookSyntaxError with code E_PLAYBOOK_SYNTAX, E_PLAYBOOK_DUPLICATE_KEY,
 *   E_PLAYBOOK_TOO_LARGE or E_PLAYBOOK_TOO_MANY_ALIASES
 */
export function parseYamlSource(text: string, file: string): YamlSource {
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_SOURCE_BYTES) {
    throw new PlaybookSyntaxError(
      'E_PLAYBOOK_TOO_LARGE',
      `${file}:1:1 the file has ${bytes} bytes, more than the limit of ${MAX_SOURCE_BYTES} (1 MiB); split it into smaller files or remove what is not needed`,
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
    // The key as written where the second one starts, up to its colon.
    const key = isDuplicate
      ? /^\s*["']?([^"':]+?)["']?\s*:/.exec(text.slice(error.pos[0], error.pos[0] + 200))?.[1]
      : undefined;
    const what = isDuplicate
      ? key === undefined
        ? 'this mapping has the same key twice'
        : `this mapping has the key "${key}" twice`
      : firstLine(error.message);
    const hint = isDuplicate ? 'remove or rename one of the two keys' : 'fix the YAML syntax';
    throw new PlaybookSyntaxError(
      isDuplicate ? 'E_PLAYBOOK_DUPLICATE_KEY' : 'E_PLAYBOOK_SYNTAX',
      `${formatLocation(location)} ${what}; ${hint}`,
      { location, cause: error },
    );
  }

  try {
    const value: unknown = document.toJS({ maxAliasCount: MAX_ALIAS_EXPANSIONS });
    return { file, text, value, document, lines };
  } catch (cause) {
    // Only a broken document gets the walks that find which alias is at fault.
    const unresolved = findUnresolvedAlias(document);
    if (unresolved) {
      const location = toLocation(file, lines, unresolved.offset);
      throw new PlaybookSyntaxError(
        'E_PLAYBOOK_SYNTAX',
        `${formatLocation(location)} alias "*${unresolved.name}" has no anchor "&${unresolved.name}" before it; define the anchor or write the value out`,
        { location, cause },
      );
    }
    const bomb = findAliasBomb(document);
    const location = toLocation(file, lines, bomb?.range?.[0] ?? 0);
    const alias = bomb ? `alias "*${bomb.source}"` : 'an alias';
    throw new PlaybookSyntaxError(
      'E_PLAYBOOK_TOO_MANY_ALIASES',
      `${formatLocation(location)} ${alias} takes the document past ${MAX_ALIAS_EXPANSIONS} alias expansions, the limit that stops alias bombs; write the repeated values out or nest fewer aliases`,
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
  // One walk instead of alias.resolve(), which walks the whole document again for every alias.
  const anchors = new Set<string>();
  let found: { name: string; offset: number } | undefined;
  visit(document, {
    Node(_key, node) {
      if (!isAlias(node)) {
        if (node.anchor) anchors.add(node.anchor);
        return undefined;
      }
      if (anchors.has(node.source)) return undefined;
      found = { name: node.source, offset: node.range?.[0] ?? 0 };
      return visit.BREAK;
    },
  });
  return found;
}

/**
 * The alias at which `document.toJS({ maxAliasCount })` gives up, found by repeating its count
 * (`Alias.resolve` in the `yaml` package): every anchor starts at one use, each alias adds one,
 * and a use costs the most expansions of any alias nested in the anchored value. Both walk the
 * document in the same order, so the first alias over the budget here is the one that threw.
 */
function findAliasBomb(document: Document.Parsed): Alias | undefined {
  const newest = new Map<string, Node>();
  const targets = new Map<Alias, Node>();
  const uses = new Map<Node, { count: number; cost: number }>();
  const costOf = (node: unknown): number => {
    if (isAlias(node)) {
      const target = targets.get(node);
      const use = target && uses.get(target);
      return use ? use.count * use.cost : 0;
    }
    if (isCollection(node))
      return node.items.reduce((most: number, item) => Math.max(most, costOf(item)), 0);
    if (isPair(node)) return Math.max(costOf(node.key), costOf(node.value));
    return 1;
  };

  let found: Alias | undefined;
  visit(document, {
    Node(_key, node) {
      if (!isAlias(node)) {
        if (node.anchor) {
          newest.set(node.anchor, node);
          uses.set(node, { count: 1, cost: 0 });
        }
        return undefined;
      }
      const target = newest.get(node.source);
      const use = target && uses.get(target);
      if (!target || !use) return undefined;
      targets.set(node, target);
      use.count += 1;
      if (use.cost === 0) use.cost = costOf(target);
      if (use.count * use.cost <= MAX_ALIAS_EXPANSIONS) return undefined;
      found = node;
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
