/** Ranges and days in IANA timezones, on the 5-minute grid of the finest rollups. */
import { invalid } from "../errors.ts";

/** A 400 whose details name the query parameter, like the schema validation's. */
export const invalidParameter = (field: string, message: string) =>
  invalid(message, [{ field: `query.${field}`, message }]);

export const FIVE_MINUTES = 5 * 60_000;

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(timezone: string): Intl.DateTimeFormat {
  let format = formatters.get(timezone);
  if (!format) {
    try {
      format = new Intl.DateTimeFormat("en-US", {
        timeZone: timezone,
        hourCycle: "h23",
        year: "numeric",
        month: "2-digit",
        day: "2-digit",
        hour: "2-digit",
        minute: "2-digit",
        second: "2-digit",
      });
    } catch {
      throw invalidParameter("timezone", `Unknown timezone "${timezone}": use an IANA name such as Europe/Berlin`);
    }
    formatters.set(timezone, format);
  }
  return format;
}

/** 400 unless the timezone is a known IANA name. */
export function checkTimezone(timezone: string): void {
  formatter(timezone);
}

/** Wall-clock fields of an instant in the timezone. */
function wallClock(ms: number, timezone: string) {
  const parts = Object.fromEntries(
    formatter(timezone)
      .formatToParts(new Date(ms))
      .map((p) => [p.type, p.value]),
  );
  return {
    year: Number(parts.year),
    month: Number(parts.month),
    day: Number(parts.day),
    hour: Number(parts.hour),
    minute: Number(parts.minute),
    second: Number(parts.second),
  };
}

/** Offset of the timezone from UTC at an instant, in ms (east positive). */
function offsetAt(ms: number, timezone: string): number {
  const w = wallClock(ms, timezone);
  return Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second) - Math.floor(ms / 1000) * 1000;
}

/** The instant of local midnight starting the given calendar day in the timezone. */
export function zonedMidnight(year: number, month: number, day: number, timezone: string): number {
  const guess = Date.UTC(year, month - 1, day);
  let instant = guess - offsetAt(guess, timezone);
  // Across a DST change the offset at midnight differs from the one at the guess.
  instant = guess - offsetAt(instant, timezone);
  return instant;
}

function localDate(ms: number, timezone: string): string {
  const w = wallClock(ms, timezone);
  return `${w.year}-${String(w.month).padStart(2, "0")}-${String(w.day).padStart(2, "0")}`;
}

/** A date (midnight in the timezone), an ISO timestamp, or Unix seconds. */
export function parseInstant(value: string, timezone: string, field: string): number {
  const date = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  if (date) {
    const [, y, m, d] = date;
    const check = new Date(Date.UTC(Number(y), Number(m) - 1, Number(d)));
    if (check.getUTCMonth() + 1 !== Number(m)) throw invalidParameter(field, `${field}: ${value} is not a valid date`);
    return zonedMidnight(Number(y), Number(m), Number(d), timezone);
  }
  if (/^\d{9,11}(\.\d+)?$/.test(value)) return Math.floor(Number(value) * 1000);
  const ms = Date.parse(value);
  if (Number.isNaN(ms) || !/^\d{4}-\d{2}-\d{2}T/.test(value)) {
    throw invalidParameter(field, `${field}: "${value}" is not a date (YYYY-MM-DD), an ISO timestamp or Unix seconds`);
  }
  return ms;
}

/** Local days [start of day, start of next day) covering [from, to). */
export function localDays(from: number, to: number, timezone: string): { date: string; from: number; to: number }[] {
  const days: { date: string; from: number; to: number }[] = [];
  let [y, m, d] = localDate(from, timezone).split("-").map(Number) as [number, number, number];
  for (let start = zonedMidnight(y, m, d, timezone); start < to && days.length < 3700; ) {
    const next = new Date(Date.UTC(y, m - 1, d + 1));
    [y, m, d] = [next.getUTCFullYear(), next.getUTCMonth() + 1, next.getUTCDate()];
    const end = zonedMidnight(y, m, d, timezone);
    days.push({ date: localDate(start, timezone), from: Math.max(start, from), to: Math.min(end, to) });
    start = end;
  }
  return days;
}
