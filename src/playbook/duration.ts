import { Duration } from 'luxon';

const SHORT_FORM = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$/;

/**
 * Reads a playbook duration: `90s`, `15m`, `2h`, `1d`, combinations such as `1h30m`, `250ms`, or
 * ISO 8601 (`PT15M`). Returns undefined when the text is neither.
 */
export function parseDuration(text: string): Duration | undefined {
  const trimmed = text.trim();
  if (trimmed.startsWith('P')) {
    // ISO 8601 wants at least one number, but luxon reads a bare P or PT as zero: a PT15M cut
    // short would fire at once.
    if (!/\d/.test(trimmed)) return undefined;
    const iso = Duration.fromISO(trimmed);
    return iso.isValid ? iso : undefined;
  }

  const match = SHORT_FORM.exec(trimmed);
  if (!match || trimmed === '') return undefined;
  const [, days, hours, minutes, seconds, milliseconds] = match;
  return Duration.fromObject({
    days: Number(days ?? 0),
    hours: Number(hours ?? 0),
    minutes: Number(minutes ?? 0),
    seconds: Number(seconds ?? 0),
    milliseconds: Number(milliseconds ?? 0),
  });
}
