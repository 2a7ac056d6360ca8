import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';

import { isScalar } from 'yaml';

import {
  PlaybookSyntaxError,
  PlaybookValidationError,
  TemplateError,
  TocsinError,
} from '../errors.js';
import type { Problem } from '../errors.js';
import { TEMPLATE_FIELDS, TemplateEngine } from '../template/index.js';
import type { CompiledTemplate, TemplateLocator } from '../template/index.js';
import { parseDuration } from './duration.js';
import { checkSchema } from './check-schema.js';
import type {
  ChannelKind,
  MessageDefinition,
  Playbook,
  PlaybookDefinition,
  Stage,
} from './types.js';
import { locate, nodeAt, parseYamlSource, problemAt } from './yaml-source.js';
import type { PathSegments, YamlSource } from './yaml-source.js';

/** The templates of one message variant, parsed. */
export interface CompiledMessage {
  sms?: CompiledTemplate;
  email?: { subject: CompiledTemplate; text: CompiledTemplate };
}

/** A checked playbook with its templates parsed once. */
export interface LoadedPlaybook extends Playbook {
  /** Keyed by `messageKey(stageId, audienceId)`. */
  messages: Map<string, CompiledMessage>;
}

/** Options for loading a playbook. */
export interface LoadPlaybookOptions {
  templates?: TemplateEngine;
}

/** The key of a stage × audience message in `LoadedPlaybook.messages`. */
export function messageKey(stageId: string, audienceId: string): string {
  return `${stageId}\u0000${audienceId}`;
}

/**
 * Reads and checks a playbook file.
 *
 * @throws PlaybookSyntaxError when the YAML does not parse
 * @throws PlaybookValidationError listing every schema and semantic problem
 * @example
 * const playbook = await loadPlaybook('playbooks/instance-down.yaml');
 * console.log(playbook.name, playbook.version, playbook.stages.length);
 */
export async function loadPlaybook(
  file: string,
  options: LoadPlaybookOptions = {},
): Promise<LoadedPlaybook> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new TocsinError('E_PLAYBOOK_READ', `${file} cannot be read; check the path`, { cause });
  }
  return parsePlaybook(text, file, options);
}

/**
 * Parses and checks playbook text.
 *
 * @throws PlaybookSyntaxError when the YAML does not parse
 * @throws PlaybookValidationError listing every schema and semantic problem
 */
export function parsePlaybook(
  text: string,
  file: string,
  options: LoadPlaybookOptions = {},
): LoadedPlaybook {
  const source = parseYamlSource(text, file);
  const schemaProblems = checkSchema('playbook', source);
  if (schemaProblems.length > 0) throw new PlaybookValidationError(file, schemaProblems);

  const definition = source.value as PlaybookDefinition;
  const templates = options.templates ?? new TemplateEngine();
  const checker = new SemanticChecker(source, definition, templates);
  const { stages, messages } = checker.check();
  if (checker.problems.length > 0) throw new PlaybookValidationError(file, checker.problems);

  return {
    name: definition.metadata.name,
    version: definition.metadata.version,
    digest: createHash('sha256').update(text).digest('hex'),
    file,
    source: text,
    definition,
    stages,
    messages,
  };
}

/** Problems of a playbook file as a list; syntax errors become a one-item list. */
export function validatePlaybookText(text: string, file: string): Problem[] {
  try {
    parsePlaybook(text, file);
    return [];
  } catch (error) {
    if (error instanceof PlaybookValidationError) return [...error.problems];
    if (error instanceof PlaybookSyntaxError && error.location) {
      return [
        { code: error.code, message: stripLocation(error.message), location: error.location },
      ];
    }
    throw error;
  }
}

class SemanticChecker {
  readonly problems: Problem[] = [];

  constructor(
    private readonly source: YamlSource,
    private readonly definition: PlaybookDefinition,
    private readonly templates: TemplateEngine,
  ) {}

  check(): { stages: Stage[]; messages: Map<string, CompiledMessage> } {
    this.checkVariables();
    const stages = this.checkStages();
    const messages = this.checkMessages();
    return { stages, messages };
  }

  private checkVariables(): void {
    const declared = this.definition.variables ?? {};
    for (const [name, variable] of Object.entries(declared)) {
      if (variable.default !== undefined && typeof variable.default !== variable.type) {
        this.report(
          ['variables', name, 'default'],
          'E_PLAYBOOK_BAD_DEFAULT',
          `the default of variable "${name}" is a ${typeof variable.default}, but its type is ${variable.type}; change one of them`,
        );
      }
    }

    this.definition.triggers.forEach((trigger, index) => {
      const mapped = trigger.variables ?? {};
      for (const name of Object.keys(mapped)) {
        if (name in declared) continue;
        this.report(
          ['triggers', index, 'variables', name],
          'E_PLAYBOOK_UNKNOWN_VARIABLE',
          `trigger fills variable "${name}", which is not declared; declare it under variables:${suggest(name, Object.keys(declared))}`,
          'key',
        );
      }
      for (const [name, variable] of Object.entries(declared)) {
        if (variable.default !== undefined || name in mapped) continue;
        this.report(
          ['triggers', index],
          'E_PLAYBOOK_UNSET_VARIABLE',
          `variable "${name}" has no default and this trigger does not fill it; add "${name}: <payload path>" under the trigger's variables: or give it a default`,
        );
      }
    });
  }

  private checkStages(): Stage[] {
    const audiences = Object.keys(this.definition.audiences);
    const seen = new Set<string>();
    const stages: Stage[] = [];

    this.definition.stages.forEach((stage, index) => {
      if (seen.has(stage.id)) {
        this.report(
          ['stages', index, 'id'],
          'E_PLAYBOOK_DUPLICATE_ID',
          `stage id "${stage.id}" is used twice; give each stage its own id`,
        );
      }
      seen.add(stage.id);

      stage.audiences.forEach((audience, position) => {
        if (audiences.includes(audience)) return;
        this.report(
          ['stages', index, 'audiences', position],
          'E_PLAYBOOK_UNKNOWN_AUDIENCE',
          `stage "${stage.id}" sends to audience "${audience}", which is not declared; declare it under audiences:${suggest(audience, audiences)}`,
        );
      });

      if (stage.on !== undefined) {
        if (stage.unless === 'acknowledged' && stage.on === 'acknowledged') {
          this.report(
            ['stages', index, 'unless'],
            'E_PLAYBOOK_UNREACHABLE_STAGE',
            `stage "${stage.id}" fires on acknowledgement unless acknowledged, so it never fires; remove unless:`,
            'key',
          );
        }
        stages.push({ id: stage.id, kind: 'event', on: stage.on, audiences: stage.audiences });
        return;
      }

      const after = parseDuration(stage.after ?? '');
      if (!after) {
        this.report(
          ['stages', index, 'after'],
          'E_PLAYBOOK_BAD_DURATION',
          `"${stage.after}" is not a duration; write it like 90s, 15m, 2h, 1h30m or PT15M`,
        );
        return;
      }
      const unlessAcknowledged = stage.unless === 'acknowledged';
      stages.push({
        id: stage.id,
        kind: 'timed',
        after,
        unlessAcknowledged,
        audiences: stage.audiences,
      });
    });

    return stages;
  }

  private checkMessages(): Map<string, CompiledMessage> {
    const compiled = new Map<string, CompiledMessage>();
    const stageIds = this.definition.stages.map((stage) => stage.id);

    for (const [stageId, byAudience] of Object.entries(this.definition.messages)) {
      const stage = this.definition.stages.find((candidate) => candidate.id === stageId);
      if (!stage) {
        this.report(
          ['messages', stageId],
          'E_PLAYBOOK_UNKNOWN_STAGE',
          `messages are given for stage "${stageId}", which is not declared; add it under stages: or fix the name${suggest(stageId, stageIds)}`,
          'key',
        );
        continue;
      }
      for (const [audienceId, message] of Object.entries(byAudience)) {
        if (!stage.audiences.includes(audienceId)) {
          this.report(
            ['messages', stageId, audienceId],
            'E_PLAYBOOK_UNKNOWN_AUDIENCE',
            `stage "${stageId}" does not send to audience "${audienceId}"; add it to the stage's audiences: or use one of ${quoteList(stage.audiences)}`,
            'key',
          );
          continue;
        }
        compiled.set(
          messageKey(stageId, audienceId),
          this.compileMessage(stageId, audienceId, message),
        );
      }
    }

    this.definition.stages.forEach((stage, index) => {
      for (const audienceId of stage.audiences) {
        const audience = this.definition.audiences[audienceId];
        if (!audience) continue;
        const message = this.definition.messages[stage.id]?.[audienceId];
        for (const channel of audience.channels) {
          if (message?.[channel] !== undefined) continue;
          this.report(
            message ? ['messages', stage.id, audienceId] : ['stages', index, 'id'],
            'E_PLAYBOOK_MISSING_MESSAGE',
            `stage "${stage.id}" tells audience "${audienceId}" over ${channel}, but messages.${stage.id}.${audienceId} has no ${channel}: text; add it or remove ${channel} from the audience's channels`,
            message ? 'key' : 'value',
          );
        }
      }
    });

    return compiled;
  }

  private compileMessage(
    stageId: string,
    audienceId: string,
    message: MessageDefinition,
  ): CompiledMessage {
    const base: PathSegments = ['messages', stageId, audienceId];
    const result: CompiledMessage = {};
    const sms =
      message.sms === undefined ? undefined : this.compileTemplate(message.sms, [...base, 'sms']);
    if (sms) result.sms = sms;
    if (message.email) {
      const subject = this.compileTemplate(message.email.subject, [...base, 'email', 'subject']);
      const text = this.compileTemplate(message.email.text, [...base, 'email', 'text']);
      if (subject && text) result.email = { subject, text };
    }
    return result;
  }

  private compileTemplate(text: string, path: PathSegments): CompiledTemplate | undefined {
    let template: CompiledTemplate;
    try {
      template = this.templates.compile(text, this.templateLocator(text, path));
    } catch (error) {
      if (!(error instanceof TemplateError) || !error.location) throw error;
      this.problems.push({
        code: error.code,
        message: stripLocation(error.message),
        location: error.location,
      });
      return undefined;
    }

    const declared = Object.keys(this.definition.variables ?? {});
    for (const variable of this.templates.variablesOf(template)) {
      const problem = describeUnknownVariable(variable.segments, declared);
      if (problem) {
        this.problems.push({
          code: 'E_PLAYBOOK_UNKNOWN_VARIABLE',
          message: problem,
          location: variable.location,
        });
      }
    }
    return template;
  }

  /**
   * Maps offsets in a template's text back to the YAML file. The text YAML hands over differs
   * from the source: quotes and escapes are gone, block indentation is stripped, and folded or
   * multi-line plain scalars join lines with spaces. Walking both side by side undoes all three.
   */
  private templateLocator(template: string, path: PathSegments): TemplateLocator {
    const node = nodeAt(this.source, path);
    const fallback = locate(this.source, path);
    if (!isScalar(node) || !node.range) return () => fallback;

    const text = this.source.text;
    const [start, end] = node.range;
    const isBlock = node.type === 'BLOCK_LITERAL' || node.type === 'BLOCK_FOLDED';
    const isQuoted = node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE';
    const from = isBlock ? text.indexOf('\n', start) + 1 : isQuoted ? start + 1 : start;
    const indent = isBlock ? blockIndent(text, from, end) : undefined;
    const offsets = alignOffsets(template, text, from, end, indent, node.type === 'QUOTE_DOUBLE');

    return (offset) => {
      const position = this.source.lines.linePos(
        offsets[Math.min(offset, offsets.length - 1)] ?? from,
      );
      return { file: this.source.file, line: position.line, col: position.col };
    };
  }

  private report(
    path: PathSegments,
    code: Problem['code'],
    message: string,
    mode: 'key' | 'value' = 'value',
  ): void {
    this.problems.push(problemAt(this.source, path, code, message, mode));
  }
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

function describeUnknownVariable(
  segments: (string | number)[],
  declared: string[],
): string | undefined {
  const [root, field] = segments;
  const name = segments.join('.');
  if (root === 'vars') {
    if (typeof field !== 'string' || declared.includes(field)) return undefined;
    return `template uses "${name}", but variable "${field}" is not declared; declare it under variables:${suggest(field, declared)}`;
  }
  if (root === 'incident' || root === 'recipient' || root === 'stage') {
    const fields = TEMPLATE_FIELDS[root];
    if (field === undefined || (typeof field === 'string' && fields.includes(field)))
      return undefined;
    return `template uses "${name}", which does not exist; ${root} has ${quoteList(fields)}`;
  }
  return `template uses "${name}", which does not exist; templates read vars.<name>, incident, recipient and stage`;
}

function stripLocation(message: string): string {
  return message.replace(/^\S+:\d+:\d+ /, '');
}

function quoteList(values: readonly string[]): string {
  return values.map((value) => `"${value}"`).join(', ');
}

function suggest(name: string, candidates: readonly string[]): string {
  if (candidates.length === 0) return '';
  return `, or use one of ${quoteList(candidates)}`;
}

export type { ChannelKind };
