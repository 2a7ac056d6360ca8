/**
 * Tocsin's errors: one base class, a few subclasses callers tell apart, and the catalogue of
 * stable codes. Every code here has a row in `docs/errors.md`.
 *
 * @module
 */

/** Every error code Tocsin raises, with what it means. Tests match on these, not on messages. */
export const ERROR_CODES = {
  E_PLAYBOOK_SYNTAX: 'a YAML document does not parse',
  E_PLAYBOOK_READ: 'a playbook, directory or config file cannot be read',
  E_PLAYBOOK_SCHEMA: 'a document breaks its JSON Schema',
  E_PLAYBOOK_DUPLICATE_KEY: 'a mapping has the same key twice',
  E_PLAYBOOK_TOO_LARGE: 'a YAML file is larger than 1 MiB',
  E_PLAYBOOK_TOO_MANY_ALIASES: 'YAML aliases expand past the limit that stops alias bombs',
  E_PLAYBOOK_UNKNOWN_AUDIENCE: 'a stage or message names an audience that is not declared',
  E_PLAYBOOK_UNKNOWN_STAGE: 'a message names a stage that is not declared',
  E_PLAYBOOK_UNKNOWN_VARIABLE: 'a trigger or template uses a variable that is not declared',
  E_PLAYBOOK_UNSET_VARIABLE: 'a variable has no default and a trigger does not fill it',
  E_PLAYBOOK_DUPLICATE_ID: 'two stages share an id',
  E_PLAYBOOK_DUPLICATE_NAME: 'two playbooks loaded together share a metadata.name',
  E_PLAYBOOK_BAD_DEFAULT: 'a variable default does not have the variable type',
  E_PLAYBOOK_MISSING_MESSAGE:
    'a stage sends to an audience but has no message for one of its channels',
  E_PLAYBOOK_BAD_DURATION: 'a duration cannot be read',
  E_PLAYBOOK_UNREACHABLE_STAGE: 'a stage can never fire',
  E_PLAYBOOK_ENDLESS_STAGE: 'a repeating stage has no until: and would never stop',
  E_PLAYBOOK_ACK_TIMEOUT:
    'an acknowledgement timeout outlasts the next escalation, or sits on a stage where nobody is left to acknowledge',
  E_PLAYBOOK_SENSITIVE_CHANNEL:
    'a message uses a variable more sensitive than its channel is trusted for',
  E_PLAYBOOK_SENSITIVE_AUDIENCE:
    'a message uses a variable more sensitive than its audience may be told',
  E_PLAYBOOK_SMS_TOO_LONG: 'an SMS takes more parts than the budget, rendered with example values',
  E_PLAYBOOK_WHATSAPP_NO_TEMPLATE:
    'a WhatsApp message has no approved template for outside the 24-hour window',
  E_PLAYBOOK_MISSING_TRANSLATION:
    'people of an audience use a locale the message has no translation for',
  E_PLAYBOOK_BAD_TRIGGER: 'a trigger uses a key its source does not read, or lacks one it needs',
  E_PLAYBOOK_BAD_ACKNOWLEDGEMENT: 'an acknowledgement rule is incomplete or can never be met',
  E_PLAYBOOK_BAD_HOURS: 'business or quiet hours are missing, empty, or in an unknown time zone',
  E_PLAYBOOK_BAD_APPROVAL: 'an approval gate cannot work as written',
  E_PLAYBOOK_NO_APPROVERS: 'fewer people can approve a stage than its quorum needs',
  E_PLAYBOOK_UNKNOWN_ROLE: 'a playbook names a role that nobody in the directory has',
  E_PLAYBOOK_UNREACHABLE_PEOPLE: 'people in an audience have no address for any of its channels',
  E_PLAYBOOK_EMPTY_AUDIENCE: 'an audience selects nobody in the directory',
  E_TEMPLATE_SYNTAX: 'a Liquid template does not parse',
  E_TEMPLATE_RENDER: 'a Liquid template fails to render, for example on an undefined variable',
  E_DIRECTORY_DUPLICATE_ID: 'two people in the directory share an id',
  E_API: 'the CLI could not do its work through the service API: unreachable, or it refused',
  E_USAGE: 'the command line is wrong: an unknown flag, a missing argument, a bad value',
  E_CONFIG_INVALID: 'the service config is invalid',
  E_CONFIG_SECRET_MISSING: 'a secret named by the config is not set',
  E_CHANNEL_REJECTED: 'the provider refused a message for good',
  E_CHANNEL_UNAVAILABLE: 'the provider could not be reached or asked us to retry',
  E_CHANNEL_RECEIPT_OVERDUE:
    'the provider took a message but no delivery receipt came within the stage receiptTimeout',
  E_CHANNEL_OUTCOME_UNKNOWN:
    'a send was in flight when the process died; the provider may or may not have it',
  E_CHANNEL_NOT_CONFIGURED: 'a playbook sends over a channel the service config does not set up',
  E_SERVER_LISTEN:
    'the HTTP server cannot listen on its address, usually because the port is taken',
  E_STORE: 'the database failed',
  E_STORE_MIGRATION: 'the database was written by a newer Tocsin',
  E_STORE_LEASE_LOST: 'another process took the writer lease; this one stops writing',
  E_ENGINE_UNKNOWN_PLAYBOOK: 'no loaded playbook has the given name',
  E_ENGINE_UNKNOWN_INCIDENT: 'no incident has the given id',
  E_ENGINE_INCIDENT_CLOSED: 'the incident is resolved or cancelled and takes no more events',
  E_ENGINE_NOT_DECLARER: 'the person may not start this playbook by hand',
  E_ENGINE_NOT_APPROVER:
    'the person may not approve this stage: not an approver, the author, or nothing is waiting',
  E_ENGINE_SNAPSHOT: 'a stored incident snapshot cannot be restored',
  E_ENGINE_VARIABLE: 'a trigger payload lacks a required variable or gives it the wrong type',
  E_TRIGGER_PAYLOAD: 'a webhook body does not have the shape its source publishes',
} as const;

/** A stable, machine-readable error code. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** Where in a source file a problem is. Lines and columns count from 1. */
export interface SourceLocation {
  file: string;
  line: number;
  col: number;
}

/** Options common to every Tocsin error. */
export interface TocsinErrorOptions {
  location?: SourceLocation;
  cause?: unknown;
}

/** The base of every error Tocsin throws: a code, an optional location, and the cause. */
export class TocsinError extends Error {
  override name = 'TocsinError';
  readonly code: ErrorCode;
  readonly location: SourceLocation | undefined;

  constructor(code: ErrorCode, message: string, options: TocsinErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.location = options.location;
  }
}

/** One problem found while checking a playbook, directory or config. */
export interface Problem {
  code: ErrorCode;
  message: string;
  location: SourceLocation;
}

/** The YAML text does not parse. */
export class PlaybookSyntaxError extends TocsinError {
  override name = 'PlaybookSyntaxError';
}

/** Schema or semantic problems; `problems` lists every one found, not only the first. */
export class PlaybookValidationError extends TocsinError {
  override name = 'PlaybookValidationError';
  readonly problems: readonly Problem[];

  constructor(file: string, problems: readonly Problem[]) {
    const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`;
    super(problems[0]?.code ?? 'E_PLAYBOOK_SCHEMA', `${file}: ${count}`, {
      location: problems[0]?.location ?? { file, line: 1, col: 1 },
    });
    this.problems = problems;
  }
}

/** A Liquid template fails to parse or render. */
export class TemplateError extends TocsinError {
  override name = 'TemplateError';
}

/** A channel adapter failed; `retryable` says whether the same send may succeed later. */
export class ChannelError extends TocsinError {
  override name = 'ChannelError';
  readonly retryable: boolean;
  readonly providerCode: string | undefined;
  readonly status: number | undefined;
  /** How long the provider asked to wait (its Retry-After), if it said. */
  readonly retryAfterMs: number | undefined;
  /**
   * The request left and its answer was lost (a timeout, a reset, a gateway error): the provider
   * may have taken the message. Sending it again could send it twice.
   */
  readonly ambiguous: boolean;
  /**
   * Whom a permanent failure concerns: this recipient (an invalid or opted-out number: try the
   * person's next channel), or the channel itself (bad credentials, a suspended account: every
   * message on it will fail until someone fixes the account). Undefined for retryable failures
   * and for faults of this one message.
   */
  readonly scope: 'recipient' | 'channel' | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    details: {
      retryable: boolean;
      providerCode?: string;
      status?: number;
      retryAfterMs?: number;
      ambiguous?: boolean;
      scope?: 'recipient' | 'channel';
      cause?: unknown;
    },
  ) {
    super(code, message, details.cause === undefined ? {} : { cause: details.cause });
    this.retryable = details.retryable;
    this.ambiguous = details.ambiguous ?? false;
    this.scope = details.scope;
    this.providerCode = details.providerCode;
    this.status = details.status;
    this.retryAfterMs = details.retryAfterMs;
  }
}

/** The database failed or holds something this version cannot read. */
export class StoreError extends TocsinError {
  override name = 'StoreError';
}

/** An incident cannot proceed: unknown id, closed incident, unreadable snapshot. */
export class EngineError extends TocsinError {
  override name = 'EngineError';
}

/** The service config is invalid or names a secret that is not set. */
export class ConfigError extends TocsinError {
  override name = 'ConfigError';
}
