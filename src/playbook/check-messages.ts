import { countSmsSegments, transliterateToGsm } from '../sms/index.js';
import { TemplateError } from '../errors.js';
import type { Problem } from '../errors.js';
import { TEMPLATE_FIELDS } from '../template/index.js';
import type { CompiledTemplate, TemplateEngine, TemplateScope } from '../template/index.js';
import { templateLocator } from './template-locator.js';
import type {
  ChannelKind,
  MessageVariantDefinition,
  PlaybookDefinition,
  Sensitivity,
} from './types.js';
import { problemAt } from './yaml-source.js';
import type { PathSegments, YamlSource } from './yaml-source.js';

/** One language's templates of a message, parsed. */
export interface CompiledVariant {
  sms?: CompiledTemplate;
  whatsapp?: {
    text?: CompiledTemplate;
    template?: { name: string; language: string; parameters: CompiledTemplate[] };
  };
  email?: { subject: CompiledTemplate; text: CompiledTemplate };
  chat?: CompiledTemplate;
}

/** A stage × audience message: the playbook's own locale and its translations. */
export interface CompiledMessage {
  main: CompiledVariant;
  locales: Map<string, CompiledVariant>;
}

/** What the message checks need from the playbook check. */
export interface MessageCheckContext {
  source: YamlSource;
  definition: PlaybookDefinition;
  templates: TemplateEngine;
  problems: Problem[];
}

/** Sensitivity levels in order; a channel or audience may carry content up to its own level. */
export const SENSITIVITY_ORDER: readonly Sensitivity[] = [
  'public',
  'internal',
  'confidential',
  'restricted',
];

/** How far each channel is trusted unless the playbook says otherwise. */
export const DEFAULT_CHANNEL_TRUST: Record<ChannelKind, Sensitivity> = {
  sms: 'internal',
  whatsapp: 'internal',
  email: 'confidential',
  // A company's chat workspace is as trusted as its email.
  chat: 'confidential',
};

const DEFAULT_SMS_SEGMENTS = 3;
const DEFAULT_AUDIENCE_LIMIT: Sensitivity = 'internal';

/** The key of a stage × audience message in `LoadedPlaybook.messages`. */
export function messageKey(stageId: string, audienceId: string): string {
  return `${stageId}\u0000${audienceId}`;
}

/** The trust of a channel in this playbook. */
export function channelTrust(definition: PlaybookDefinition, channel: ChannelKind): Sensitivity {
  return definition.channels?.[channel]?.trust ?? DEFAULT_CHANNEL_TRUST[channel];
}

/**
 * Parses every message template and checks what the schema cannot: references to stages and
 * audiences, a text for every channel of every audience in every locale, variables that exist,
 * sensitive variables only where channel and audience may carry them, WhatsApp templates for
 * outside the 24-hour window, and SMS length with example values.
 */
export function compileMessages(context: MessageCheckContext): Map<string, CompiledMessage> {
  return new MessageChecker(context).check();
}

class MessageChecker {
  private readonly source: YamlSource;
  private readonly definition: PlaybookDefinition;
  private readonly templates: TemplateEngine;
  private readonly problems: Problem[];

  constructor(context: MessageCheckContext) {
    this.source = context.source;
    this.definition = context.definition;
    this.templates = context.templates;
    this.problems = context.problems;
  }

  check(): Map<string, CompiledMessage> {
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
        const base: PathSegments = ['messages', stageId, audienceId];
        const locales = new Map<string, CompiledVariant>();
        for (const [locale, variant] of Object.entries(message.locales ?? {})) {
          locales.set(
            locale,
            this.compileVariant(variant, [...base, 'locales', locale], stageId, audienceId, locale),
          );
        }
        const main = this.compileVariant(message, base, stageId, audienceId, this.mainLocale());
        compiled.set(messageKey(stageId, audienceId), { main, locales });
      }
    }

    this.checkCompleteness();
    return compiled;
  }

  private mainLocale(): string {
    return this.definition.locale ?? 'en';
  }

  /** Every channel of every audience of every stage has a text, in every locale given. */
  private checkCompleteness(): void {
    this.definition.stages.forEach((stage, index) => {
      for (const audienceId of stage.audiences) {
        const audience = this.definition.audiences[audienceId];
        if (!audience) continue;
        const message = this.definition.messages[stage.id]?.[audienceId];
        const variants: [PathSegments, MessageVariantDefinition | undefined, string][] = [
          [['messages', stage.id, audienceId], message, `messages.${stage.id}.${audienceId}`],
          ...Object.entries(message?.locales ?? {}).map(
            ([locale, variant]): [PathSegments, MessageVariantDefinition, string] => [
              ['messages', stage.id, audienceId, 'locales', locale],
              variant,
              `messages.${stage.id}.${audienceId}.locales.${locale}`,
            ],
          ),
        ];
        for (const [path, variant, name] of variants) {
          for (const channel of audience.channels) {
            if (variant?.[channel] !== undefined) continue;
            this.report(
              variant ? path : ['stages', index, 'id'],
              'E_PLAYBOOK_MISSING_MESSAGE',
              `stage "${stage.id}" tells audience "${audienceId}" over ${channel}, but ${name} has no ${channel}: text; add it or remove ${channel} from the audience's channels`,
              variant ? 'key' : 'value',
            );
          }
        }
      }
    });
  }

  private compileVariant(
    variant: MessageVariantDefinition,
    base: PathSegments,
    stageId: string,
    audienceId: string,
    locale: string,
  ): CompiledVariant {
    const result: CompiledVariant = {};
    const compile = (
      text: string,
      path: PathSegments,
      channel: ChannelKind,
    ): CompiledTemplate | undefined =>
      this.compileTemplate(text, path, channel, stageId, audienceId);

    if (variant.sms !== undefined) {
      const sms = compile(variant.sms, [...base, 'sms'], 'sms');
      if (sms) {
        result.sms = sms;
        this.checkSmsLength(sms, [...base, 'sms'], stageId, locale);
      }
    }

    if (variant.whatsapp) {
      const { text, template } = variant.whatsapp;
      const whatsapp: NonNullable<CompiledVariant['whatsapp']> = {};
      const compiledText =
        text === undefined ? undefined : compile(text, [...base, 'whatsapp', 'text'], 'whatsapp');
      if (compiledText) whatsapp.text = compiledText;
      if (template) {
        const parameters = (template.parameters ?? []).flatMap((parameter, index) => {
          const compiledParameter = compile(
            parameter,
            [...base, 'whatsapp', 'template', 'parameters', index],
            'whatsapp',
          );
          return compiledParameter ? [compiledParameter] : [];
        });
        whatsapp.template = { name: template.name, language: template.language, parameters };
      } else {
        this.report(
          [...base, 'whatsapp'],
          'E_PLAYBOOK_WHATSAPP_NO_TEMPLATE',
          'a WhatsApp message without template: fails for anyone who has not written to the business in the last 24 hours; add template: with an approved template name and language',
          'key',
        );
      }
      result.whatsapp = whatsapp;
    }

    if (variant.email) {
      const subject = compile(variant.email.subject, [...base, 'email', 'subject'], 'email');
      const text = compile(variant.email.text, [...base, 'email', 'text'], 'email');
      if (subject && text) result.email = { subject, text };
    }

    if (variant.chat !== undefined) {
      const chat = compile(variant.chat, [...base, 'chat'], 'chat');
      if (chat) result.chat = chat;
    }
    return result;
  }

  private compileTemplate(
    text: string,
    path: PathSegments,
    channel: ChannelKind,
    stageId: string,
    audienceId: string,
  ): CompiledTemplate | undefined {
    let template: CompiledTemplate;
    try {
      template = this.templates.compile(text, templateLocator(this.source, text, path));
    } catch (error) {
      if (!(error instanceof TemplateError) || !error.location) throw error;
      this.problems.push({
        code: error.code,
        message: stripLocation(error.message),
        location: error.location,
      });
      return undefined;
    }

    const declared = this.definition.variables ?? {};
    const trust = channelTrust(this.definition, channel);
    const limit = this.definition.audiences[audienceId]?.maxSensitivity ?? DEFAULT_AUDIENCE_LIMIT;
    for (const variable of this.templates.variablesOf(template)) {
      const at = (): Problem['location'] => template.locate(variable.offset);
      const unknown =
        describeUnknownVariable(variable.segments, declared) ??
        this.describeEmptyStageField(variable.segments, stageId);
      if (unknown) {
        this.problems.push({
          code: 'E_PLAYBOOK_UNKNOWN_VARIABLE',
          message: unknown,
          location: at(),
        });
        continue;
      }
      const [root, name] = variable.segments;
      if (root !== 'vars' || typeof name !== 'string') continue;
      const sensitivity = declared[name]?.sensitivity ?? 'public';
      if (isAbove(sensitivity, trust)) {
        this.problems.push({
          code: 'E_PLAYBOOK_SENSITIVE_CHANNEL',
          message: `variable "${name}" is ${sensitivity}, but ${channel} is trusted only up to ${trust}; leave it out of the ${channel} text or raise channels.${channel}.trust if the channel really is safe for it`,
          location: at(),
        });
      } else if (isAbove(sensitivity, limit)) {
        this.problems.push({
          code: 'E_PLAYBOOK_SENSITIVE_AUDIENCE',
          message: `variable "${name}" is ${sensitivity}, but audience "${audienceId}" may be told only up to ${limit}; leave it out or set the audience's maxSensitivity`,
          location: at(),
        });
      }
    }
    return template;
  }

  /** `stage.nextAt` and `stage.ackBy` are null, so empty, in a stage that cannot set them. */
  private describeEmptyStageField(
    segments: (string | number)[],
    stageId: string,
  ): string | undefined {
    const [root, field] = segments;
    if (root !== 'stage') return undefined;
    const stage = this.definition.stages.find((candidate) => candidate.id === stageId);
    if (field === 'nextAt' && stage?.every === undefined) {
      return `template uses "stage.nextAt", which is always empty in stage "${stageId}": it does not repeat; leave it out or give the stage every:`;
    }
    if (field === 'ackBy' && stage?.ackTimeout === undefined) {
      return `template uses "stage.ackBy", which is always empty in stage "${stageId}": it has no ackTimeout:; leave it out or give the stage ackTimeout:`;
    }
    return undefined;
  }

  /** Renders an SMS with example values and counts its parts against the budget. */
  private checkSmsLength(
    template: CompiledTemplate,
    path: PathSegments,
    stageId: string,
    locale: string,
  ): void {
    const budget = this.definition.limits?.smsSegments ?? DEFAULT_SMS_SEGMENTS;
    let text: string;
    try {
      text = this.templates.render(template, this.exampleScope(stageId, locale));
    } catch {
      // A template that fails on example values is reported by the variable checks already.
      return;
    }
    if (this.definition.channels?.sms?.transliterate === true) text = transliterateToGsm(text).text;
    const { encoding, segments } = countSmsSegments(text);
    if (segments <= budget) return;
    const hint =
      encoding === 'UCS-2'
        ? '; it is UCS-2 because of characters outside GSM-7, which halves the room (channels.sms.transliterate: true replaces look-alikes)'
        : '';
    this.report(
      path,
      'E_PLAYBOOK_SMS_TOO_LONG',
      `with example values this SMS takes ${segments} parts (${encoding}, ${[...text].length} characters), over the budget of ${budget}${hint}; shorten it or raise limits.smsSegments`,
    );
  }

  private exampleScope(stageId: string, locale: string): TemplateScope {
    const vars: TemplateScope['vars'] = {};
    for (const [name, variable] of Object.entries(this.definition.variables ?? {})) {
      vars[name] =
        variable.example ??
        variable.default ??
        variable.values?.[0] ??
        placeholder(name, variable.type);
    }
    return {
      vars,
      incident: {
        id: 'inc_01KBSX4Y7Q2M9P3RTV6W',
        playbook: this.definition.metadata.name,
        version: this.definition.metadata.version,
        startedAt: '2026-01-15T09:30:00.000Z',
        elapsedMinutes: 45,
        acknowledged: false,
        acknowledgedBy: null,
        status: 'open',
        code: '4821',
      },
      recipient: { id: 'example', name: 'Alexandra Example', locale, timeZone: 'Europe/Berlin' },
      stage: {
        id: stageId,
        occurrence: 1,
        nextAt: '2026-01-15T10:00:00.000Z',
        ackBy: '2026-01-15T09:45:00.000Z',
      },
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

function placeholder(name: string, type: string): string | number | boolean {
  switch (type) {
    case 'number':
      return 12345;
    case 'boolean':
      return true;
    case 'duration':
      return '15m';
    default:
      return `${name} example value`.slice(0, 24);
  }
}

function isAbove(level: Sensitivity, limit: Sensitivity): boolean {
  return SENSITIVITY_ORDER.indexOf(level) > SENSITIVITY_ORDER.indexOf(limit);
}

function describeUnknownVariable(
  segments: (string | number)[],
  declared: Record<string, unknown>,
): string | undefined {
  const [root, field] = segments;
  const name = segments.join('.');
  // Every value a template reads is a string, number, boolean or null: nothing has fields.
  const tooDeep =
    segments.length > 2
      ? `template uses "${name}", but "${segments.slice(0, 2).join('.')}" is a single value with no fields; use it as it is`
      : undefined;
  if (root === 'vars') {
    // The whole map would carry every variable, sensitive ones included, past the checks.
    if (field === undefined) {
      return 'template uses "vars" as a whole; name each variable, like vars.summary';
    }
    if (typeof field !== 'string' || Object.hasOwn(declared, field)) return tooDeep;
    return `template uses "${name}", but variable "${field}" is not declared; declare it under variables:${suggest(field, Object.keys(declared))}`;
  }
  if (root === 'incident' || root === 'recipient' || root === 'stage') {
    const fields = TEMPLATE_FIELDS[root];
    if (field === undefined) {
      return `template uses "${root}" as a whole, which prints nothing useful; name a field: ${quoteList(fields)}`;
    }
    if (typeof field === 'string' && fields.includes(field)) return tooDeep;
    return `template uses "${name}", which does not exist; ${root} has ${quoteList(fields)}`;
  }
  return `template uses "${name}", which does not exist; templates read vars.<name>, incident, recipient and stage`;
}

/** Drops the `file:line:col ` prefix of an error message; problems carry their location. */
export function stripLocation(message: string): string {
  return message.replace(/^\S+:\d+:\d+ /, '');
}

export function quoteList(values: readonly string[]): string {
  return values.map((value) => `"${value}"`).join(', ');
}

export function suggest(name: string, candidates: readonly string[]): string {
  if (candidates.length === 0) return '';
  return `, or use one of ${quoteList(candidates)}`;
}
