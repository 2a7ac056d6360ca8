import { Liquid } from 'liquidjs';
import type { Template } from 'liquidjs';
import { DateTime } from 'luxon';

import { TemplateError } from '../errors.js';
import type { SourceLocation } from '../errors.js';

/** Names a template may read at its top level. */
export const TEMPLATE_ROOTS = {
  vars: 'the incident variables declared under variables:',
  incident:
    'id, code (the four digits a reply quotes), playbook, version, startedAt, elapsedMinutes, acknowledged, acknowledgedBy, status',
  recipient: 'id, name, locale, timeZone',
  stage: 'id, occurrence, nextAt, ackBy',
} as const;

/** Fields each root other than `vars` offers. */
export const TEMPLATE_FIELDS: Record<Exclude<keyof typeof TEMPLATE_ROOTS, 'vars'>, string[]> = {
  incident: [
    'id',
    'code',
    'playbook',
    'version',
    'startedAt',
    'elapsedMinutes',
    'acknowledged',
    'acknowledgedBy',
    'status',
  ],
  recipient: ['id', 'name', 'locale', 'timeZone'],
  stage: ['id', 'occurrence', 'nextAt', 'ackBy'],
};

/** What a template sees when it renders. */
export interface TemplateScope {
  vars: Record<string, string | number | boolean>;
  incident: {
    id: string;
    playbook: string;
    version: number;
    startedAt: string;
    elapsedMinutes: number;
    acknowledged: boolean;
    acknowledgedBy: string | null;
    status: string;
    /** The four digits a reply quotes to name the incident: "ACK 4821". */
    code: string;
  };
  recipient: { id: string; name: string; locale: string; timeZone: string };
  /**
   * `nextAt`: when a repeating stage fires next, or null; `ackBy`: until when the recipients
   * have to acknowledge, for a stage with `ackTimeout:` while unacknowledged, or null.
   */
  stage: { id: string; occurrence: number; nextAt: string | null; ackBy: string | null };
}

/** Maps a 0-based offset in the template text to its place in the playbook file. */
export type TemplateLocator = (offset: number) => SourceLocation;

/** A parsed template and where its text is in the playbook; `locate(0)` is where it starts. */
export interface CompiledTemplate {
  tokens: Template[];
  text: string;
  locate: TemplateLocator;
}

/** A variable a template reads; `offset` is where in the template text, for `locate`. */
export interface TemplateVariable {
  segments: (string | number)[];
  offset: number;
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
  compile(text: string, locate: TemplateLocator): CompiledTemplate {
    try {
      return { tokens: this.liquid.parse(text), text, locate };
    } catch (cause) {
      const at = locateError(text, locate, cause);
      throw new TemplateError(
        'E_TEMPLATE_SYNTAX',
        `${at.file}:${at.line}:${at.col} ${describeLiquidError(cause)}; fix the Liquid syntax`,
        { location: at, cause },
      );
    }
  }

  /** Every variable the template reads from outside, with where it is in the text. */
  variablesOf(template: CompiledTemplate): TemplateVariable[] {
    const analysis = this.liquid.analyzeSync(template.tokens, { partials: false });
    const found: TemplateVariable[] = [];
    for (const variables of Object.values(analysis.globals)) {
      for (const variable of variables) {
        const segments = variable.segments.map((segment) =>
          typeof segment === 'string' || typeof segment === 'number' ? segment : '*',
        );
        const offset = toOffset(template.text, variable.location.row, variable.location.col);
        found.push({ segments, offset });
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
      const location = template.locate(0);
      throw new TemplateError(
        'E_TEMPLATE_RENDER',
        `${location.file}:${location.line}:${location.col} ${describeLiquidError(cause)}; check the names the template uses`,
        { location, cause },
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

function locateError(text: string, locate: TemplateLocator, cause: unknown): SourceLocation {
  const token = (cause as { token?: { getPosition?: () => [number, number] } }).token;
  const position = token?.getPosition?.();
  return locate(position ? toOffset(text, position[0], position[1]) : 0);
}

/** The offset of a 1-based row and column in `text`. */
function toOffset(text: string, row: number, col: number): number {
  let offset = 0;
  for (let line = 1; line < row; line++) {
    const next = text.indexOf('\n', offset);
    if (next === -1) break;
    offset = next + 1;
  }
  return offset + col - 1;
}
