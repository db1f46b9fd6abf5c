/**
 * Size and value budgets of the values the service stores. DynamoDB refuses an item over
 * 400 KB and a number it cannot represent, and a refused write fails its whole transaction:
 * so every value passes through `storableValue` before it is written, which bounds each
 * field a tenant or a model can make large and turns what cannot be stored into an ERROR
 * that says why. The bounds add up to `VALUE_ITEM_BUDGET_BYTES` (test/unit/item-budget.test.ts).
 */
import type { MetricValue, SegmentRef } from "../schemas/job.ts";
import { isStorableNumber } from "../schemas/metric-values.ts";

/** Longest excerpt of a transcript segment a value keeps beside its reference. */
export const MAX_SEGMENT_EXCERPT_CHARS = 500;
/** Longest reasoning, error message or text value kept (the judge's own limits are lower). */
const MAX_VALUE_TEXT_CHARS = 4_000;
/** Most labels a CLASSIFICATION value keeps, each at most MAX_LABEL_CHARS. */
const MAX_VALUE_LABELS = 50;
const MAX_LABEL_CHARS = 200;
/** What a stored value may weigh at most, keys and index attributes included. */
export const VALUE_ITEM_BUDGET_BYTES = 64 * 1024;

const unstorableNumberMessage = (value: number) =>
  `The value ${String(value)} cannot be stored: numbers must be finite, with a magnitude between 1e-130 and 1e125 (or 0)`;

/** `text` cut to `maxChars` UTF-16 units, never inside a surrogate pair, marked with an ellipsis when cut. */
export function truncateText(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text;
  let end = maxChars - 1;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return `${text.slice(0, end)}…`;
}

export const segmentExcerpt = (ref: SegmentRef): SegmentRef => ({
  ...ref,
  text: truncateText(ref.text, MAX_SEGMENT_EXCERPT_CHARS),
});

function boundedJudgedValue(value: MetricValue["value"]): MetricValue["value"] {
  if (typeof value === "string") return truncateText(value, MAX_VALUE_TEXT_CHARS);
  if (Array.isArray(value))
    return value.slice(0, MAX_VALUE_LABELS).map((label) => truncateText(label, MAX_LABEL_CHARS));
  return value;
}

/** The first number in the value a store would refuse, if any. */
function unstorableNumber(value: MetricValue): number | undefined {
  const numbers = [value.value, value.confidence, value.estimatedCostUsd, ...Object.values(value.usage ?? {})];
  return numbers.find((n): n is number => typeof n === "number" && !isStorableNumber(n));
}

/**
 * An ERROR in place of a value that cannot be stored: its item's identity, the reason, and
 * what the judgment cost (the tokens were billed) when that can be stored; nothing a tenant
 * or the model sent.
 */
export function replacedByError(value: MetricValue, errorMessage: string): MetricValue {
  const { jobId, callId, metricDefinitionId, metricVersion, computedAt, policyIds, model, usage, estimatedCostUsd } =
    value;
  const costStorable = [...Object.values(usage ?? {}), estimatedCostUsd ?? 0].every(isStorableNumber);
  return {
    jobId,
    callId,
    metricDefinitionId,
    metricVersion,
    computedAt,
    context: "CALL",
    ...(policyIds ? { policyIds } : {}),
    captureStatus: "ERROR",
    errorMessage,
    ...(model ? { model } : {}),
    ...(usage && costStorable ? { usage, ...(estimatedCostUsd !== undefined ? { estimatedCostUsd } : {}) } : {}),
  };
}

/**
 * The value as it may be stored: long texts cut, segment references kept with an excerpt,
 * and a number DynamoDB cannot hold turned into an ERROR value that names it.
 */
export function storableValue(value: MetricValue): MetricValue {
  const badNumber = unstorableNumber(value);
  if (badNumber !== undefined) return replacedByError(value, unstorableNumberMessage(badNumber));
  const { segment, fromSegment, toSegment, valueReasoning, errorMessage, ...rest } = value;
  return {
    ...rest,
    ...(value.value !== undefined ? { value: boundedJudgedValue(value.value) } : {}),
    ...(valueReasoning !== undefined ? { valueReasoning: truncateText(valueReasoning, MAX_VALUE_TEXT_CHARS) } : {}),
    ...(errorMessage !== undefined ? { errorMessage: truncateText(errorMessage, MAX_VALUE_TEXT_CHARS) } : {}),
    ...(segment ? { segment: segmentExcerpt(segment) } : {}),
    ...(fromSegment ? { fromSegment: segmentExcerpt(fromSegment) } : {}),
    ...(toSegment ? { toSegment: segmentExcerpt(toSegment) } : {}),
  };
}

/**
 * An item's size as DynamoDB bills and limits it: attribute names plus values (strings in
 * UTF-8, numbers about one byte per two digits, lists and maps with their overhead).
 */
export function itemBytes(item: Record<string, unknown>): number {
  let bytes = 0;
  for (const [name, value] of Object.entries(item)) bytes += Buffer.byteLength(name) + valueBytes(value);
  return bytes;
}

function valueBytes(value: unknown): number {
  if (value === null || value === undefined || typeof value === "boolean") return 1;
  if (typeof value === "string") return Buffer.byteLength(value);
  if (typeof value === "number") return Math.ceil(String(value).replace(/[-.e+]/g, "").length / 2) + 1;
  if (value instanceof Uint8Array) return value.byteLength;
  if (value instanceof Set) return [...value].reduce((sum: number, member) => sum + valueBytes(member), 0);
  if (Array.isArray(value)) return 3 + value.reduce((sum: number, member) => sum + 1 + valueBytes(member), 0);
  if (typeof value === "object") return 3 + itemBytes(value as Record<string, unknown>) + Object.keys(value).length;
  return 0;
}
