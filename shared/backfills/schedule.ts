/**
 * EventBridge-style schedule expressions: `rate(N minute|minutes|hour|hours|day|days)` and
 * `cron(minutes hours day-of-month month day-of-week year)` in UTC, with `*`, `?`, lists,
 * ranges and `/` steps (names such as MON or JAN too). Enough to find the next run time.
 */
const MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

interface Field {
  min: number;
  max: number;
  names?: string[];
  /** Names map to 1-based numbers (months JAN=1; days SUN=1 as in EventBridge). */
  nameBase: number;
}
const FIELDS: Field[] = [
  { min: 0, max: 59, nameBase: 0 },
  { min: 0, max: 23, nameBase: 0 },
  { min: 1, max: 31, nameBase: 0 },
  { min: 1, max: 12, names: MONTHS, nameBase: 1 },
  { min: 1, max: 7, names: DAYS, nameBase: 1 },
  { min: 1970, max: 2199, nameBase: 0 },
];

function parseValue(token: string, field: Field): number {
  const named = field.names?.indexOf(token.toUpperCase()) ?? -1;
  const value = named >= 0 ? named + field.nameBase : Number(token);
  if (!Number.isInteger(value) || value < field.min || value > field.max) {
    throw new Error(`"${token}" is out of range ${field.min}-${field.max}`);
  }
  return value;
}

/** The set of allowed values, or undefined for "any". */
function parseField(expression: string, field: Field): Set<number> | undefined {
  if (expression === "*" || expression === "?") return undefined;
  const values = new Set<number>();
  for (const part of expression.split(",")) {
    const [range = "", stepText] = part.split("/");
    const step = stepText === undefined ? 1 : Number(stepText);
    if (!Number.isInteger(step) || step < 1) throw new Error(`bad step in "${part}"`);
    let [from, to] = [field.min, field.max];
    if (range !== "*") {
      const [start = "", end] = range.split("-");
      from = parseValue(start, field);
      to = end === undefined ? (stepText === undefined ? from : field.max) : parseValue(end, field);
    }
    if (from > to) throw new Error(`bad range "${range}"`);
    for (let value = from; value <= to; value += step) values.add(value);
  }
  return values;
}

export type Schedule = { kind: "rate"; everyMs: number } | { kind: "cron"; fields: (Set<number> | undefined)[] };

export function parseSchedule(expression: string): Schedule {
  const rate = /^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$/.exec(expression.trim());
  if (rate) {
    const amount = Number(rate[1]);
    const unit = rate[2] ?? "minutes";
    if (amount < 1) throw new Error("rate must be at least 1");
    // As EventBridge: rate(1 hour), rate(2 hours) — never rate(1 hours) or rate(2 hour).
    if ((amount === 1) !== !unit.endsWith("s")) {
      throw new Error(`use "${amount} ${amount === 1 ? unit.replace(/s$/, "") : `${unit.replace(/s$/, "")}s`}"`);
    }
    const unitMs = unit.startsWith("minute") ? 60_000 : unit.startsWith("hour") ? 3_600_000 : 86_400_000;
    return { kind: "rate", everyMs: amount * unitMs };
  }
  const cron = /^cron\((.+)\)$/.exec(expression.trim());
  if (!cron)
    throw new Error('use "rate(N minutes|hours|days)" or "cron(min hour day-of-month month day-of-week year)"');
  const parts = (cron[1] ?? "").trim().split(/\s+/);
  if (parts.length !== 6) throw new Error("cron needs 6 fields: minutes hours day-of-month month day-of-week year");
  if ((parts[2] === "?") === (parts[4] === "?")) {
    throw new Error("cron needs ? in exactly one of day-of-month and day-of-week");
  }
  return { kind: "cron", fields: parts.map((part, index) => parseField(part, FIELDS[index] as Field)) };
}

const allows = (set: Set<number> | undefined, value: number) => set === undefined || set.has(value);

/** The first run strictly after `after` (UTC), or undefined if there is none within 5 years. */
export function nextRun(schedule: Schedule, after: Date, anchor?: Date): Date | undefined {
  if (schedule.kind === "rate") {
    const start = (anchor ?? after).getTime();
    const elapsed = Math.max(0, after.getTime() - start);
    return new Date(start + (Math.floor(elapsed / schedule.everyMs) + 1) * schedule.everyMs);
  }
  const [minutes, hours, days, months, weekdays, years] = schedule.fields;
  const next = new Date(after.getTime());
  next.setUTCSeconds(0, 0);
  next.setUTCMinutes(next.getUTCMinutes() + 1);
  const limit = after.getTime() + 5 * 366 * 86_400_000;
  while (next.getTime() <= limit) {
    if (!allows(years, next.getUTCFullYear()) || !allows(months, next.getUTCMonth() + 1)) {
      next.setUTCMonth(next.getUTCMonth() + 1, 1);
      next.setUTCHours(0, 0);
      continue;
    }
    if (!allows(days, next.getUTCDate()) || !allows(weekdays, next.getUTCDay() + 1)) {
      next.setUTCDate(next.getUTCDate() + 1);
      next.setUTCHours(0, 0);
      continue;
    }
    if (!allows(hours, next.getUTCHours())) {
      next.setUTCHours(next.getUTCHours() + 1, 0);
      continue;
    }
    if (!allows(minutes, next.getUTCMinutes())) {
      next.setUTCMinutes(next.getUTCMinutes() + 1);
      continue;
    }
    return next;
  }
  return undefined;
}
