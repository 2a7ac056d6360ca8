import { DateTime } from 'luxon';

import { addressOf, selectPeople } from '../directory/index.js';
import type { Directory, Person } from '../directory/index.js';
import { TemplateError } from '../errors.js';
import type { Logger } from '../logger.js';
import { messageKey, parseDuration } from '../playbook/index.js';
import type { ChannelKind, CompiledVariant, LoadedPlaybook } from '../playbook/index.js';
import { countSmsSegments, transliterateToGsm } from '../sms/index.js';
import type { NewOutboxMessage } from '../store/index.js';
import type { TemplateEngine, TemplateScope } from '../template/index.js';
import { closingAfter, isWithin } from '../time/index.js';
import type { VariableValues } from '../triggers/index.js';
import type { IncidentContext, StageDecision } from './build-machine.js';

/** Everything needed to turn one stage decision into outbox rows. */
export interface DecideMessagesInput {
  playbook: LoadedPlaybook;
  directory: Directory;
  templates: TemplateEngine;
  incidentId: string;
  status: string;
  variables: VariableValues;
  context: IncidentContext;
  decision: StageDecision;
  log: Logger;
  /** People who said STOP on a channel, as `person\u0000channel`; that channel is skipped. */
  optOuts?: ReadonlySet<string>;
  /**
   * A fallback: decide only for this person in this audience, on the next channel of the
   * audience's order after the one that failed.
   */
  fallbackFrom?: { personId: string; audienceId: string; channel: string };
  /**
   * Only the (audience, person) pairs with index in [from, to) of the stage's enumeration
   * (`countRecipientPairs`): a stage to many people is decided in parts.
   */
  range?: { from: number; to: number };
  /** Told of each person of an audience the stage cannot reach, and why. */
  onSkipped?: (skipped: SkippedRecipient) => void;
}

/** A person an audience holds whom a stage could not reach on any of its channels. */
export interface SkippedRecipient {
  personId: string;
  audienceId: string;
  /** Opted out (STOP) of every channel they have an address for, or no address for any. */
  reason: 'opted-out' | 'no-address';
}

/**
 * The messages a fired stage sends: each person of each audience on the first channel of the
 * audience's order they have an address for, in their locale (or the nearest one the message
 * has), once per person and channel however many of the stage's audiences they are in.
 */
export function decideMessages(input: DecideMessagesInput): NewOutboxMessage[] {
  const { playbook, decision, context } = input;
  const stage = playbook.definition.stages.find((candidate) => candidate.id === decision.stageId);
  if (!stage) return [];

  const elapsed = DateTime.fromISO(decision.at).diff(DateTime.fromISO(context.startedAt));
  const nextTimer = context.timers.find((timer) => timer.id === `stage:${stage.id}`);
  const ackTimer = context.timers.find((timer) => timer.id === `ack:${stage.id}`);
  const incident: TemplateScope['incident'] = {
    id: input.incidentId,
    playbook: playbook.name,
    version: playbook.version,
    startedAt: context.startedAt,
    elapsedMinutes: Math.max(0, Math.floor(elapsed.as('minutes'))),
    acknowledged: context.acknowledgedAt !== null,
    acknowledgedBy: context.acknowledgedBy,
    status: input.status,
    code: context.replyCode ?? '',
  };
  const stageScope = {
    id: stage.id,
    occurrence: decision.occurrence,
    nextAt: nextTimer?.dueAt ?? null,
    ackBy: ackTimer?.dueAt ?? null,
  };

  const receiptTimeoutMs =
    stage.receiptTimeout === undefined
      ? undefined
      : parseDuration(stage.receiptTimeout)?.toMillis();

  const messages: NewOutboxMessage[] = [];
  const seen = new Set<string>();
  let unreachable = 0;
  const fallback = input.fallbackFrom;
  const range = fallback ? undefined : input.range;
  let offset = 0;
  for (const audienceId of fallback ? [fallback.audienceId] : stage.audiences) {
    const audience = playbook.definition.audiences[audienceId];
    const compiled = playbook.messages.get(messageKey(stage.id, audienceId));
    if (!audience || !compiled) continue;

    const selected = selectPeople(input.directory, audience.select);
    const first = offset;
    offset += selected.length;
    const people = range
      ? selected.slice(Math.max(0, range.from - first), Math.max(0, range.to - first))
      : selected;
    if (people.length === 0) continue;
    const failedAt = fallback ? audience.channels.indexOf(fallback.channel as ChannelKind) : -1;
    const channels = fallback
      ? failedAt < 0
        ? []
        : audience.channels.slice(failedAt + 1)
      : audience.channels;
    for (const person of fallback ? people.filter((p) => p.id === fallback.personId) : people) {
      const channel = channels.find(
        (kind) =>
          addressOf(person, kind) !== undefined && !input.optOuts?.has(`${person.id}\u0000${kind}`),
      );
      if (!channel) {
        unreachable++;
        if (!fallback) {
          const hasAddress = channels.some((kind) => addressOf(person, kind) !== undefined);
          input.onSkipped?.({
            personId: person.id,
            audienceId,
            reason: hasAddress ? 'opted-out' : 'no-address',
          });
        }
        continue;
      }
      const key = `${person.id}\u0000${channel}`;
      if (seen.has(key)) continue;
      seen.add(key);

      const variant = chooseVariant(compiled.locales, compiled.main, person.locale);
      const scope: TemplateScope = {
        vars: input.variables,
        incident,
        recipient: {
          id: person.id,
          name: person.name,
          locale: person.locale,
          timeZone: person.timeZone,
        },
        stage: stageScope,
      };
      const base: Omit<
        NewOutboxMessage,
        'subject' | 'body' | 'status' | 'errorCode' | 'errorMessage'
      > = {
        incidentId: input.incidentId,
        stageId: stage.id,
        occurrence: decision.occurrence,
        audienceId,
        personId: person.id,
        channel,
        address: addressOf(person, channel) ?? '',
        decidedAt: decision.at,
        ...(receiptTimeoutMs === undefined ? {} : { receiptTimeoutMs }),
      };
      const rendered = render(input, base, variant, channel, scope);
      const heldUntil = stage.critical ? undefined : quietUntil(playbook, person, decision.at);
      messages.push(heldUntil ? { ...rendered, notBefore: heldUntil } : rendered);
    }
  }

  if (unreachable > 0)
    input.log.warn({ stageId: stage.id, unreachable }, 'recipients without an address');
  return messages;
}

/**
 * How many (audience, person) pairs a stage enumerates: the size of the work its firing
 * decides, before people in several audiences are counted once.
 */
export function countRecipientPairs(
  playbook: LoadedPlaybook,
  directory: Directory,
  stageId: string,
): number {
  const stage = playbook.definition.stages.find((candidate) => candidate.id === stageId);
  if (!stage) return 0;
  return stage.audiences.reduce((sum, audienceId) => {
    const audience = playbook.definition.audiences[audienceId];
    const compiled = playbook.messages.get(messageKey(stage.id, audienceId));
    return audience && compiled ? sum + selectPeople(directory, audience.select).length : sum;
  }, 0);
}

/**
 * How many messages a stage would decide, per channel, without rendering any: the same choice
 * of channel per person (first with an address and no opt-out), each person and channel once.
 */
export function tallyRecipients(
  playbook: LoadedPlaybook,
  directory: Directory,
  stageId: string,
  optOuts: ReadonlySet<string> | undefined,
): { messages: number; byChannel: Record<string, number> } {
  const stage = playbook.definition.stages.find((candidate) => candidate.id === stageId);
  if (!stage) return { messages: 0, byChannel: {} };
  const audiences = stage.audiences.flatMap((audienceId) => {
    const audience = playbook.definition.audiences[audienceId];
    return audience && playbook.messages.has(messageKey(stage.id, audienceId)) ? [audience] : [];
  });
  // Without opt-outs the tally depends on the audiences alone: an update sent every 30 minutes
  // for a day reads the directory once, not 48 times.
  const key =
    optOuts === undefined || optOuts.size === 0
      ? JSON.stringify(audiences.map((audience) => [audience.select, audience.channels]))
      : undefined;
  const cached = key === undefined ? undefined : tallies.get(directory)?.get(key);
  if (cached) return { messages: cached.messages, byChannel: { ...cached.byChannel } };

  const byChannel: Record<string, number> = {};
  let messages = 0;
  const seen = new Set<string>();
  for (const audience of audiences) {
    for (const person of selectPeople(directory, audience.select)) {
      const channel = audience.channels.find(
        (kind) =>
          addressOf(person, kind) !== undefined && !optOuts?.has(`${person.id}\u0000${kind}`),
      );
      if (!channel || seen.has(`${person.id}\u0000${channel}`)) continue;
      seen.add(`${person.id}\u0000${channel}`);
      byChannel[channel] = (byChannel[channel] ?? 0) + 1;
      messages++;
    }
  }
  if (key !== undefined) {
    const cache = tallies.get(directory) ?? new Map<string, Tally>();
    cache.set(key, { messages, byChannel: { ...byChannel } });
    tallies.set(directory, cache);
  }
  return { messages, byChannel };
}

type Tally = { messages: number; byChannel: Record<string, number> };
const tallies = new WeakMap<Directory, Map<string, Tally>>();

/** The end of the person's quiet hours, in their own time zone, if `at` falls inside them. */
function quietUntil(playbook: LoadedPlaybook, person: Person, at: string): string | undefined {
  const quiet = playbook.definition.hours?.quiet;
  if (!quiet) return undefined;
  const window = { zone: person.timeZone, from: quiet.from, to: quiet.to };
  const instant = DateTime.fromISO(at, { zone: 'utc' });
  return isWithin(window, instant)
    ? (closingAfter(window, instant).toISO() ?? undefined)
    : undefined;
}

/** The exact locale, else its language (de-AT → de), else the playbook's own. */
function chooseVariant(
  locales: Map<string, CompiledVariant>,
  main: CompiledVariant,
  locale: string,
): CompiledVariant {
  return locales.get(locale) ?? locales.get(locale.split('-')[0] ?? locale) ?? main;
}

function render(
  input: DecideMessagesInput,
  base: Omit<NewOutboxMessage, 'subject' | 'body' | 'status' | 'errorCode' | 'errorMessage'>,
  variant: CompiledVariant,
  channel: ChannelKind,
  scope: TemplateScope,
): NewOutboxMessage {
  const { templates } = input;
  try {
    const { subject, body: rendered } = renderParts(templates, variant, channel, scope);
    // A playbook may ask for SMS in GSM-7 look-alikes: twice the room per part.
    const body =
      channel === 'sms' && input.playbook.definition.channels?.sms?.transliterate === true
        ? transliterateToGsm(rendered).text
        : rendered;
    return withSmsParts({
      ...base,
      subject,
      body,
      status: 'decided',
      errorCode: null,
      errorMessage: null,
    });
  } catch (error) {
    if (!(error instanceof TemplateError)) throw error;
    input.log.error(
      { err: error, stageId: base.stageId, personId: base.personId },
      'message not rendered',
    );
    return {
      ...base,
      subject: null,
      body: '',
      status: 'failed',
      errorCode: error.code,
      errorMessage: error.message,
    };
  }
}

function renderParts(
  templates: TemplateEngine,
  variant: CompiledVariant,
  channel: ChannelKind,
  scope: TemplateScope,
): { subject: string | null; body: string } {
  switch (channel) {
    case 'sms':
      return { subject: null, body: variant.sms ? templates.render(variant.sms, scope) : '' };
    case 'email':
      if (!variant.email) return { subject: null, body: '' };
      return {
        subject: templates.render(variant.email.subject, scope),
        body: templates.render(variant.email.text, scope),
      };
    case 'chat':
      return { subject: null, body: variant.chat ? templates.render(variant.chat, scope) : '' };
    case 'whatsapp': {
      // Both forms are kept: the channel sends the text inside the 24-hour window and the
      // approved template outside it.
      const whatsapp = variant.whatsapp;
      const text = whatsapp?.text ? templates.render(whatsapp.text, scope) : null;
      const template = whatsapp?.template && {
        name: whatsapp.template.name,
        language: whatsapp.template.language,
        parameters: whatsapp.template.parameters.map((parameter) =>
          templates.render(parameter, scope),
        ),
      };
      return { subject: null, body: JSON.stringify({ text, template: template ?? null }) };
    }
  }
}

/** The outbox stage id of the requests for a gated stage, apart from the stage's own messages. */
export function approvalStageId(stageId: string): string {
  return `approval:${stageId}`;
}

/** What asking for an approval needs. */
export interface DecideApprovalRequestsInput {
  playbook: LoadedPlaybook;
  directory: Directory;
  incidentId: string;
  createdBy: string;
  decision: StageDecision;
  /** The incident's reply code; with the stage's number it makes the approval code. */
  replyCode?: string;
}

const REQUEST_TEXTS: Record<string, { subject: string; body: string; reply: string }> = {
  en: {
    subject: 'Approval needed: {stage} ({incident})',
    body: 'Approval needed for stage "{stage}" of incident {incident} ({playbook}); {quorum} approval(s) required. Approve it in Tocsin: incident {incident}, stage {stage}.',
    reply: ' Or reply APPROVE {approvalCode}.',
  },
  de: {
    subject: 'Freigabe nötig: {stage} ({incident})',
    body: 'Freigabe nötig für Stufe "{stage}" von Vorfall {incident} ({playbook}); {quorum} Freigabe(n) erforderlich. Freigeben in Tocsin: Vorfall {incident}, Stufe {stage}.',
    reply: ' Oder antworten Sie FREIGABE {approvalCode}.',
  },
};

/**
 * Asks everyone who may approve a gated stage, except the incident's author, on the first
 * channel they have (SMS, then email), in their language where Tocsin has one (German or
 * English).
 */
export function decideApprovalRequests(input: DecideApprovalRequestsInput): NewOutboxMessage[] {
  const { playbook, decision } = input;
  const stage = playbook.stages.find((candidate) => candidate.id === decision.stageId);
  const gate = stage?.approval;
  if (!gate) return [];

  const stageNumber = playbook.stages.indexOf(stage) + 1;
  const approvalCode =
    input.replyCode === undefined ? undefined : `${input.replyCode}-${stageNumber}`;
  const approvers = input.directory.people.filter(
    (person) =>
      person.id !== input.createdBy && person.roles.some((role) => gate.roles.includes(role)),
  );
  return approvers.flatMap((person): NewOutboxMessage[] => {
    const channel: ChannelKind | undefined = person.phone
      ? 'sms'
      : person.email
        ? 'email'
        : undefined;
    if (!channel) return [];
    const texts = REQUEST_TEXTS[person.locale.split('-')[0] ?? 'en'] ?? REQUEST_TEXTS.en;
    const fill = (text: string): string =>
      text
        .replaceAll('{stage}', decision.stageId)
        .replaceAll('{incident}', input.incidentId)
        .replaceAll('{playbook}', playbook.name)
        .replaceAll('{quorum}', String(gate.quorum))
        .replaceAll('{approvalCode}', approvalCode ?? '');
    // By SMS the approver can answer with the code; email replies do not reach Tocsin.
    const body = texts
      ? fill(texts.body + (channel === 'sms' && approvalCode ? texts.reply : ''))
      : '';
    return [
      withSmsParts({
        incidentId: input.incidentId,
        stageId: approvalStageId(decision.stageId),
        occurrence: decision.occurrence,
        audienceId: 'approvers',
        personId: person.id,
        channel,
        address: addressOf(person, channel) ?? '',
        subject: channel === 'email' && texts ? fill(texts.subject) : null,
        body,
        status: 'decided',
        errorCode: null,
        errorMessage: null,
        decidedAt: decision.at,
      }),
    ];
  });
}

/** An SMS row records its encoding and parts, what the provider will bill. */
function withSmsParts(message: NewOutboxMessage): NewOutboxMessage {
  if (message.channel !== 'sms' || message.body === '') return message;
  const { encoding, segments } = countSmsSegments(message.body);
  return { ...message, smsEncoding: encoding, smsSegments: segments };
}
