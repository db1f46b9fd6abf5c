/**
 * What every platform's mapping shares: flattening the fields that do not map onto the call
 * into its properties, within the call's limits, and the bad-input error that names a field.
 */
import { invalid } from "../errors.ts";

/** A call's properties: at most 50, keys of at most 128 characters, values of at most 1024. */
export const MAX_CALL_PROPERTIES = 50;
const MAX_PROPERTY_KEY_CHARS = 128;
const MAX_PROPERTY_VALUE_CHARS = 1024;

/** 400 naming the payload field a mapping needs and did not get. */
export const missingField = (field: string, what = "is required") =>
  invalid(`The payload's ${field} ${what}`, [{ field: `body.${field}`, message: what }]);

/**
 * `value` flattened into `prefix.key` string properties (arrays by index), each cut to the
 * limits; null and undefined are left out.
 */
export function flattened(prefix: string, value: unknown, into: [string, string][] = []): [string, string][] {
  if (value === null || value === undefined) return into;
  if (typeof value === "object") {
    const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
    for (const [key, inner] of entries) flattened(prefix ? `${prefix}.${key}` : key, inner, into);
    return into;
  }
  into.push([prefix.slice(0, MAX_PROPERTY_KEY_CHARS), String(value).slice(0, MAX_PROPERTY_VALUE_CHARS)]);
  return into;
}

/** `base` with `added` (which win on a clash), at most MAX_CALL_PROPERTIES: the first ones are kept. */
export function withProperties(base: Record<string, string>, added: [string, string][]): Record<string, string> {
  const properties: Record<string, string> = { ...base };
  for (const [key, value] of added) {
    if (key === "") continue;
    if (!(key in properties) && Object.keys(properties).length >= MAX_CALL_PROPERTIES) continue;
    properties[key] = value;
  }
  return properties;
}

/** The call's properties: the integration's, then the mapped ones. */
export const callProperties = (integrationProperties: Record<string, string> | undefined, mapped: [string, string][]) =>
  withProperties(integrationProperties ?? {}, mapped);

export const isoFromMs = (ms: number) => new Date(ms).toISOString();

/** A platform's seconds (from the call's start) as the call's milliseconds. */
export const secondsToMs = (seconds: number) => Math.max(0, Math.round(seconds * 1000));

/**
 * A tool call's arguments as the call's `parameters`: an object as it is, a JSON string
 * parsed; anything else kept under `key` (the platform's own name for them).
 */
export function toolParameters(value: unknown, key: string): Record<string, unknown> | undefined {
  if (value === undefined || value === null) return undefined;
  let parsed = value;
  if (typeof value === "string") {
    try {
      parsed = JSON.parse(value);
    } catch {
      return { [key]: value };
    }
  }
  return parsed && typeof parsed === "object" && !Array.isArray(parsed)
    ? (parsed as Record<string, unknown>)
    : { [key]: parsed };
}
