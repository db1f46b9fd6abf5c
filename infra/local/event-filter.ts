/**
 * Lambda event filtering (the EventBridge pattern subset Lambda accepts), applied to a
 * record in the JSON shape the function would receive. Supported:
 *   - nested objects: every key of the pattern must match the record's field of that name;
 *   - arrays of allowed values: exact strings, numbers, booleans and null;
 *   - matchers inside those arrays: {prefix}, {suffix}, {"equals-ignore-case"}, {exists},
 *     {"anything-but": value | [values] | {prefix} | {suffix}}, {numeric: [op, n, ...]};
 *   - {$or: [pattern, ...]}.
 * As in EventBridge, an array in the record matches when any of its elements matches.
 */

export type FilterPattern = Record<string, unknown>;

/** True when `record` satisfies `pattern`. An empty pattern matches everything. */
export function matchesFilterPattern(pattern: FilterPattern, record: unknown): boolean {
  return matchObject(pattern, record);
}

/** True when the record satisfies at least one pattern (Lambda ORs a mapping's filters); none = everything. */
export function matchesAnyFilterPattern(patterns: FilterPattern[], record: unknown): boolean {
  return patterns.length === 0 || patterns.some((pattern) => matchesFilterPattern(pattern, record));
}

const matcherKeys = new Set(["prefix", "suffix", "equals-ignore-case", "exists", "anything-but", "numeric"]);

/** Throws on patterns this matcher does not understand, so a bad wiring fails at start-up, not per record. */
export function validateFilterPattern(pattern: FilterPattern, path = ""): void {
  for (const [key, expected] of Object.entries(pattern)) {
    const where = path ? `${path}.${key}` : key;
    if (key === "$or") validateAlternatives(expected, where);
    else if (Array.isArray(expected)) validateLeaf(expected, where);
    else if (isPlainObject(expected)) validateFilterPattern(expected, where);
    else throw new Error(`Invalid filter pattern at "${where}": leaves must be arrays of allowed values`);
  }
}

function validateAlternatives(alternatives: unknown, where: string): void {
  if (!Array.isArray(alternatives)) throw new Error(`Invalid filter pattern at "${where}": $or needs an array`);
  for (const alternative of alternatives) {
    if (!isPlainObject(alternative)) throw new Error(`Invalid filter pattern at "${where}": $or needs patterns`);
    validateFilterPattern(alternative, where);
  }
}

function validateLeaf(allowed: unknown[], where: string): void {
  for (const condition of allowed) {
    if (!isPlainObject(condition)) continue;
    const [matcher, ...extra] = Object.keys(condition);
    if (matcher === undefined || extra.length > 0 || !matcherKeys.has(matcher)) {
      throw new Error(`Unsupported filter matcher at "${where}": ${JSON.stringify(condition)}`);
    }
    if (matcher === "numeric") matchNumeric(condition.numeric, 0);
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function matchObject(pattern: FilterPattern, value: unknown): boolean {
  for (const [key, expected] of Object.entries(pattern)) {
    if (key === "$or") {
      if (!Array.isArray(expected)) throw new Error("Invalid filter pattern: $or needs an array of patterns");
      if (!expected.some((alternative) => isPlainObject(alternative) && matchObject(alternative, value))) return false;
      continue;
    }
    // A missing parent is a missing field: only {exists: false} leaves can match it.
    const field = isPlainObject(value) ? value[key] : undefined;
    if (Array.isArray(expected)) {
      if (!matchLeaf(expected, field)) return false;
    } else if (isPlainObject(expected)) {
      if (!matchObject(expected, field)) return false;
    } else {
      throw new Error(`Invalid filter pattern at "${key}": leaves must be arrays of allowed values`);
    }
  }
  return true;
}

/** A leaf: the field matches when any of the allowed values/matchers accepts it. */
function matchLeaf(allowed: unknown[], field: unknown): boolean {
  return allowed.some((condition) => {
    if (isPlainObject(condition) && "exists" in condition) {
      const present = field !== undefined && !(Array.isArray(field) && field.length === 0);
      return condition.exists === present;
    }
    if (field === undefined) return false;
    const candidates = Array.isArray(field) ? field : [field];
    if (isPlainObject(condition) && "anything-but" in condition) {
      // anything-but excludes: with an array field, no element may be excluded.
      return (
        candidates.length > 0 && candidates.every((candidate) => matchAnythingBut(condition["anything-but"], candidate))
      );
    }
    return candidates.some((candidate) => matchCondition(condition, candidate));
  });
}

function matchCondition(condition: unknown, value: unknown): boolean {
  if (!isPlainObject(condition)) return condition === value;
  if ("prefix" in condition) return typeof value === "string" && value.startsWith(String(condition.prefix));
  if ("suffix" in condition) return typeof value === "string" && value.endsWith(String(condition.suffix));
  if ("equals-ignore-case" in condition) {
    return typeof value === "string" && value.toLowerCase() === String(condition["equals-ignore-case"]).toLowerCase();
  }
  if ("numeric" in condition) return matchNumeric(condition.numeric, value);
  throw new Error(`Unsupported filter matcher: ${JSON.stringify(condition)}`);
}

function matchAnythingBut(excluded: unknown, value: unknown): boolean {
  if (Array.isArray(excluded)) return !excluded.includes(value);
  if (isPlainObject(excluded)) return !matchCondition(excluded, value);
  return excluded !== value;
}

const numericOperators: Record<string, (a: number, b: number) => boolean> = {
  "=": (a, b) => a === b,
  "<": (a, b) => a < b,
  "<=": (a, b) => a <= b,
  ">": (a, b) => a > b,
  ">=": (a, b) => a >= b,
};

/** {numeric: [">", 0, "<=", 5]}: every operator/operand pair must hold; only JSON numbers match. */
function matchNumeric(spec: unknown, value: unknown): boolean {
  if (!Array.isArray(spec) || spec.length === 0 || spec.length % 2 !== 0) {
    throw new Error(`Invalid numeric matcher: ${JSON.stringify(spec)}`);
  }
  if (typeof value !== "number") return false;
  for (let i = 0; i < spec.length; i += 2) {
    const compare = numericOperators[String(spec[i])];
    const operand = spec[i + 1];
    if (!compare || typeof operand !== "number") throw new Error(`Invalid numeric matcher: ${JSON.stringify(spec)}`);
    if (!compare(value, operand)) return false;
  }
  return true;
}
