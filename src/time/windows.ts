import { DateTime } from 'luxon';

/** A daily window of wall-clock time in a named zone, e.g. 08:00–18:00 Monday to Friday. */
export interface TimeWindow {
  zone: string;
  from: string;
  to: string;
  /** Luxon weekdays, 1 = Monday … 7 = Sunday; every day when absent. */
  days?: number[];
}

const DAYS_AHEAD = 8;

/**
 * Whether an instant falls inside the window. Times are wall-clock times in the window's zone,
 * so "08:00" stays 08:00 across daylight-saving changes; a window whose end is before its start
 * runs overnight, and its day is the day it starts.
 */
export function isWithin(window: TimeWindow, instant: DateTime): boolean {
  return openingBefore(window, instant) !== undefined;
}

/** The first instant at or after `instant` that is inside the window; undefined if it never opens. */
export function nextOpening(window: TimeWindow, instant: DateTime): DateTime | undefined {
  if (isWithin(window, instant)) return instant;
  const local = instant.setZone(window.zone);
  for (let day = 0; day <= DAYS_AHEAD; day++) {
    const start = at(local.startOf('day').plus({ days: day }), window.from);
    if (start >= instant && isDayAllowed(window, start)) return start.toUTC();
  }
  return undefined;
}

/** When the window period containing `instant` ends; `instant` itself when it is outside. */
export function closingAfter(window: TimeWindow, instant: DateTime): DateTime {
  const opening = openingBefore(window, instant);
  if (!opening) return instant;
  const end = at(opening, window.to);
  return (end <= opening ? at(opening.plus({ days: 1 }), window.to) : end).toUTC();
}

/** The start of the window period that contains `instant`, if any. */
function openingBefore(window: TimeWindow, instant: DateTime): DateTime | undefined {
  const local = instant.setZone(window.zone);
  // The period may have opened today or, for an overnight window, yesterday.
  for (const day of [0, -1]) {
    const opening = at(local.startOf('day').plus({ days: day }), window.from);
    if (!isDayAllowed(window, opening) || opening > instant) continue;
    let closing = at(opening, window.to);
    if (closing <= opening) closing = at(opening.plus({ days: 1 }), window.to);
    if (instant < closing) return opening;
  }
  return undefined;
}

function isDayAllowed(window: TimeWindow, opening: DateTime): boolean {
  return window.days === undefined || window.days.includes(opening.weekday);
}

function at(day: DateTime, time: string): DateTime {
  const [hour, minute] = time.split(':').map(Number);
  return day.set({ hour: hour ?? 0, minute: minute ?? 0, second: 0, millisecond: 0 });
}
