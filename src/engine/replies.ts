/** What a reply asks for: its keyword's meaning, and the incident code it quotes, if any. */
export interface ReplyIntent {
  kind: 'acknowledge' | 'approve' | 'opt-out' | 'opt-in' | 'unknown';
  code?: string;
  /** For an approval: the gated stage's number in its playbook, from the approval code. */
  stageNumber?: number;
}

// Opt-out and opt-in words as carriers and Twilio treat them, so Tocsin's ledger agrees with
// the network's; acknowledgement words in English and German.
const OPT_OUT = new Set(['STOP', 'STOPALL', 'UNSUBSCRIBE', 'CANCEL', 'END', 'QUIT']);
const OPT_IN = new Set(['START', 'UNSTOP', 'YES']);
// Approval words; an approval always quotes its code, INCIDENT-STAGE, as the request gives it.
const APPROVE = new Set(['APPROVE', 'APPROVED', 'FREIGABE', 'FREIGEBEN', 'GENEHMIGT']);
const ACKNOWLEDGE = new Set([
  'ACK',
  'ACKNOWLEDGE',
  'ACKNOWLEDGED',
  'OK',
  'OKAY',
  'QUITTIERT',
  'BESTÄTIGT',
  'BESTAETIGT',
  'VERSTANDEN',
]);

/**
 * Reads an SMS or WhatsApp reply: the first word decides ("ACK 4821", "ok", "STOP"), and a
 * number of four to six digits anywhere names the incident by its code.
 */
export function interpretReply(text: string): ReplyIntent {
  const words = text
    .trim()
    .split(/\s+/)
    .map((word) => word.replace(/[.,!?;:]+$/, ''));
  const keyword = (words[0] ?? '').toUpperCase();
  const code = words.find((word) => /^\d{4,6}$/.test(word));
  const withCode = (kind: ReplyIntent['kind']): ReplyIntent =>
    code === undefined ? { kind } : { kind, code };
  if (APPROVE.has(keyword)) {
    const approval = words
      .map((word) => /^(\d{4,6})-(\d{1,2})$/.exec(word))
      .find((match) => match !== null);
    if (!approval?.[1] || !approval[2]) return { kind: 'unknown' };
    return { kind: 'approve', code: approval[1], stageNumber: Number(approval[2]) };
  }
  if (OPT_OUT.has(keyword)) return { kind: 'opt-out' };
  if (OPT_IN.has(keyword)) return { kind: 'opt-in' };
  if (ACKNOWLEDGE.has(keyword) || /^\d{4,6}$/.test(keyword)) return withCode('acknowledge');
  return withCode('unknown');
}

/** What Tocsin did with a reply, and the short answer it sends back. */
export interface ReplyOutcome {
  outcome:
    | 'acknowledged'
    | 'approved'
    | 'not-approved'
    | 'opted-out'
    | 'opted-in'
    | 'no-incident'
    | 'not-understood'
    | 'unknown-sender';
  incidentId?: string;
  personId?: string;
  /** The text to answer with; empty when nothing should be sent back. */
  answer: string;
}

const ANSWERS: Record<
  'en' | 'de',
  Record<Exclude<ReplyOutcome['outcome'], 'unknown-sender'>, string>
> = {
  en: {
    acknowledged: 'Acknowledged incident {code}. Thank you.',
    approved: 'Your approval of {code} is recorded.',
    'not-approved':
      'Your approval of {code} was not taken: you may not approve it, or it waits for none.',
    'opted-out': '',
    'opted-in': 'You will get incident messages by SMS again.',
    'no-incident': 'No open incident matches your reply. Reply ACK and the code from the message.',
    'not-understood': 'Reply ACK and the code from the message to acknowledge, or STOP to opt out.',
  },
  de: {
    acknowledged: 'Vorfall {code} quittiert. Danke.',
    approved: 'Ihre Freigabe für {code} ist erfasst.',
    'not-approved':
      'Ihre Freigabe für {code} wurde nicht angenommen: Sie dürfen sie nicht erteilen, oder es wartet keine.',
    'opted-out': '',
    'opted-in': 'Sie erhalten wieder Vorfallsmeldungen per SMS.',
    'no-incident':
      'Kein offener Vorfall passt zu Ihrer Antwort. Antworten Sie mit OK und dem Code.',
    'not-understood': 'Antworten Sie mit OK und dem Code zum Quittieren, oder STOP zum Abmelden.',
  },
};

/** The answer to a reply in the person's language (German or English). */
export function answerFor(
  outcome: Exclude<ReplyOutcome['outcome'], 'unknown-sender'>,
  locale: string | undefined,
  code = '',
): string {
  const language = locale?.toLowerCase().startsWith('de') ? 'de' : 'en';
  return ANSWERS[language][outcome].replace('{code}', code);
}
