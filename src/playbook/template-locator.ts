import { isScalar } from 'yaml';

import type { TemplateLocator } from '../template/index.js';
import { locate, nodeAt } from './yaml-source.js';
import type { PathSegments, YamlSource } from './yaml-source.js';

/**
 * Maps offsets in a template's text back to the YAML file. The text YAML hands over differs
 * from the source: quotes and escapes are gone, block indentation is stripped, and folded or
 * multi-line plain scalars join lines with spaces. Walking both side by side undoes all three.
 */
export function templateLocator(
  source: YamlSource,
  template: string,
  path: PathSegments,
): TemplateLocator {
  // Most templates are never located: the work waits for the first problem that needs it.
  let locator: TemplateLocator | undefined;
  return (offset) => {
    locator ??= buildLocator(source, template, path);
    return locator(offset);
  };
}

function buildLocator(source: YamlSource, template: string, path: PathSegments): TemplateLocator {
  const node = nodeAt(source, path);
  const fallback = locate(source, path);
  if (!isScalar(node) || !node.range) return () => fallback;

  const text = source.text;
  const [start, end] = node.range;
  const isBlock = node.type === 'BLOCK_LITERAL' || node.type === 'BLOCK_FOLDED';
  const isQuoted = node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE';
  const from = isBlock ? text.indexOf('\n', start) + 1 : isQuoted ? start + 1 : start;
  const indent = isBlock ? blockIndent(text, from, end) : undefined;
  const offsets = alignOffsets(template, text, from, end, indent, node.type === 'QUOTE_DOUBLE');

  return (offset) => {
    const position = source.lines.linePos(offsets[Math.min(offset, offsets.length - 1)] ?? from);
    return { file: source.file, line: position.line, col: position.col };
  };
}

/** Indentation of a block scalar: that of its first line with content. */
function blockIndent(text: string, from: number, end: number): number {
  const content =
    text
      .slice(from, end)
      .split('\n')
      .find((line) => line.trim() !== '') ?? '';
  return content.length - content.trimStart().length;
}

/**
 * For each character of `template`, the offset of the source character it came from. Source
 * characters with no counterpart (indentation, the second quote of `''`) are skipped; a line
 * break in the source may stand for a space (folding) or a line break; in double quotes an
 * escape sequence stands for the one character it encodes.
 */
function alignOffsets(
  template: string,
  text: string,
  from: number,
  end: number,
  indent: number | undefined,
  isDoubleQuoted: boolean,
): number[] {
  const offsets: number[] = [];
  let j = from;
  const skipIndent = (): void => {
    for (let n = 0; j < end && (text[j] === ' ' || text[j] === '\t'); n++) {
      if (indent !== undefined && n >= indent) break;
      j++;
    }
  };

  if (indent !== undefined) skipIndent();
  for (const character of template) {
    let width = 0;
    while (j < end) {
      width = matchWidth(text, j, character, isDoubleQuoted);
      if (width > 0) break;
      j += isDoubleQuoted && text[j] === '\\' ? escapeAt(text, j).length : 1;
    }
    for (let unit = 0; unit < character.length; unit++) offsets.push(j);
    j += Math.max(width, 1);
    if (text[j - 1] === '\n') skipIndent();
  }
  offsets.push(j);
  return offsets;
}

/** How many source characters stand for `character` at `at`; 0 when they do not. */
function matchWidth(text: string, at: number, character: string, isDoubleQuoted: boolean): number {
  if (isDoubleQuoted && text[at] === '\\') {
    const escape = escapeAt(text, at);
    return escape.value === character ? escape.length : 0;
  }
  if (text.startsWith(character, at)) return character.length;
  return text[at] === '\n' && (character === ' ' || character === '\n') ? 1 : 0;
}

// YAML 1.2 double-quoted escapes (§5.7): one letter, or \x, \u, \U with 2, 4 or 8 hex digits.
const SIMPLE_ESCAPES: Record<string, string> = {
  '0': '\0',
  a: '\x07',
  b: '\b',
  t: '\t',
  '\t': '\t',
  n: '\n',
  v: '\v',
  f: '\f',
  r: '\r',
  e: '\x1b',
  ' ': ' ',
  '"': '"',
  '/': '/',
  '\\': '\\',
  N: '\x85',
  _: '\xa0',
  L: '\u2028',
  P: '\u2029',
};
const HEX_ESCAPES: Record<string, number> = { x: 2, u: 4, U: 8 };

function escapeAt(text: string, at: number): { value: string; length: number } {
  const letter = text[at + 1] ?? '';
  const digits = HEX_ESCAPES[letter];
  if (digits !== undefined) {
    const code = Number.parseInt(text.slice(at + 2, at + 2 + digits), 16);
    return { value: Number.isNaN(code) ? '' : String.fromCodePoint(code), length: 2 + digits };
  }
  return { value: SIMPLE_ESCAPES[letter] ?? '', length: 2 };
}
