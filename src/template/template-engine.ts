import { Liquid } from 'liquidjs';
import type { Template } from 'liquidjs';
import { DateTime } from 'luxon';

import { TemplateError } from '../errors.js';
import type { SourceLocation } from '../errors.js';

/** Names a template may read at its top level. */
export const TEMPLATE_ROOTS = {
  vars: 'the incident variables declared under variables:',
  incident: 'id, playbook, version, startedAt, acknowledged, acknowledgedBy, status',
  recipient: 'id, name, locale, timeZone',
  stage: 'id',
} as const;

/** Fields each root other than `vars` offers. */
export const TEMPLATE_FIELDS: Record<Exclude<keyof typeof TEMPLATE_ROOTS, 'vars'>, string[]> = {
  incident: ['id', 'playbook', 'version', 'startedAt', 'acknowledged', 'acknowledgedBy', 'status'],
  recipient: ['id', 'name', 'locale', 'timeZone'],
  stage: ['id'],
};

/** What a template sees when it renders. */
export interface TemplateScope {
  vars: Record<string, string | number | boolean>;
  incident: {
    id: string;
    playbook: string;
    version: number;
    startedAt: string;
    acknowledged: boolean;
    acknowledgedBy: string | null;
    status: string;
  };
  recipient: { id: string; name: string; locale: string; timeZone: string };
  stage: { id: string };
}

/** A parsed template and where its text starts in the playbook. */
export interface CompiledTemplate {
  tokens: Template[];
  location: SourceLocation;
  /** Columns before the text on the template's second and later lines (block scalars). */
  indent: number;
}

/** A variable a template reads, with its place in the playbook. */
export interface TemplateVariable {
  segments: (string | number)[];
  location: SourceLocation;
}

/**
 * The Liquid setup every message uses: strict variables and filters, so a typo fails loudly
 * instead of sending an empty string, and a `datetime` filter that renders in the recipient's
 * time zone and locale.
 */
export class TemplateEngine {
  private readonly liquid: Liquid;

  constructor() {
    this.liquid = new Liquid({
      strictVariables: true,
      strictFilters: true,
      ownPropertyOnly: true,
      cache: false,
    });
    this.liquid.registerFilter(
      'datetime',
      function (
        this: { context: { getSync(path: string[]): unknown } },
        value: unknown,
        format?: unknown,
      ) {
        const zone = this.context.getSync(['recipient', 'timeZone']);
        const locale = this.context.getSync(['recipient', 'locale']);
        return formatDateTime(value, format, zone, locale);
      },
    );
  }

  /**
   * Parses a template once.
   *
   * @throws TemplateError E_TEMPLATE_SYNTAX, located in the playbook
   */
  compile(text: string, location: SourceLocation, indent = 0): CompiledTemplate {
    try {
      return { tokens: this.liquid.parse(text), location, indent };
    } catch (cause) {
      const at = shiftLocation(location, indent, cause);
      throw new TemplateError(
        'E_TEMPLATE_SYNTAX',
        `${at.file}:${at.line}:${at.col} ${describeLiquidError(cause)}; fix the Liquid syntax`,
        { location: at, cause },
      );
    }
  }

  /** Every variable the template reads from outside, with its location. */
  variablesOf(template: CompiledTemplate): TemplateVariable[] {
    const analysis = this.liquid.analyzeSync(template.tokens, { partials: false });
    const found: TemplateVariable[] = [];
    for (const variables of Object.values(analysis.globals)) {
      for (const variable of variables) {
        const segments = variable.segments.map((segment) =>
          typeof segment === 'string' || typeof segment === 'number' ? segment : '*',
        );
        const position = [variable.location.row, variable.location.col] as const;
        found.push({
          segments,
          location: toFileLocation(template.location, template.indent, position),
        });
      }
    }
    return found;
  }

  /**
   * Renders a compiled template.
   *
   * @throws TemplateError E_TEMPLATE_RENDER
   */
  render(template: CompiledTemplate, scope: TemplateScope): string {
    try {
      return String(this.liquid.renderSync(template.tokens, scope));
    } catch (cause) {
      const { file, line, col } = template.location;
      throw new TemplateError(
        'E_TEMPLATE_RENDER',
        `${file}:${line}:${col} ${describeLiquidError(cause)}; check the names the template uses`,
        { location: template.location, cause },
      );
    }
  }
}

function formatDateTime(value: unknown, format: unknown, zone: unknown, locale: unknown): string {
  const instant = DateTime.fromISO(String(value), { zone: 'utc' });
  if (!instant.isValid) return String(value);
  const local = instant.setZone(typeof zone === 'string' ? zone : 'UTC');
  const withLocale = typeof locale === 'string' ? local.setLocale(locale) : local;
  return withLocale.toFormat(typeof format === 'string' ? format : 'yyyy-MM-dd HH:mm ZZZZ');
}

function describeLiquidError(cause: unknown): string {
  const message = cause instanceof Error ? cause.message : String(cause);
  return (message.split('\n')[0] ?? message).replace(/, line:\d+, col:\d+$/, '');
}

function shiftLocation(location: SourceLocation, indent: number, cause: unknown): SourceLocation {
  const token = (cause as { token?: { getPosition?: () => [number, number] } }).token;
  const position = token?.getPosition?.();
  return position ? toFileLocation(location, indent, position) : location;
}

function toFileLocation(
  start: SourceLocation,
  indent: number,
  [row, col]: readonly [number, number],
): SourceLocation {
  return {
    file: start.file,
    line: start.line + row - 1,
    col: row === 1 ? start.col + col - 1 : indent + col,
  };
}
