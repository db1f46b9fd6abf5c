/**
 * Rollups of metric values for the analytics API, reached exactly once through rollup
 * deltas (deltas.ts). Per organization × metric × label set, buckets at
 * four resolutions — 5 minutes, 1 hour, 1 UTC day, 10 days (since the Unix epoch) — so any
 * range on 5-minute boundaries (days in any timezone, :30/:45 offsets and DST days
 * included) reads whole 10-day buckets, then days, then hours, then 5-minute buckets at its
 * edges: a 90-day range is at most 8 + 10 + 46 + 22 buckets, whatever the number of values.
 *
 * A bucket holds `count`, `sum` and, for metrics flagged `histogram`, a log-bucketed
 * histogram (attributes `h<index>`) whose buckets grow by 2 %: quantiles come back within
 * ±1 % relative error (min and max too: they are the lowest and highest non-empty buckets).
 * A CLASSIFICATION metric's bucket also counts each label (`c:<label>`, the label bounded
 * like label values), so a range's values per label add up from the same items.
 * Hour, day and 10-day buckets are one item each; the twelve 5-minute buckets of an hour
 * share one item, their attributes suffixed `@<slot>` (`count@05`), so the finest tier
 * costs one item per hour with data instead of up to twelve.
 *
 * Only histogram metrics write hour items. Another metric's hour is the sum of its twelve
 * 5-minute slots, read from the 5-minute item instead: still one item per hour to read,
 * and under 1 KB without histograms. That saves a rollup update per value, over a third
 * of them when a job's calls are spread over many hours (values of different hours rarely
 * share an update). Histogram metrics keep hour items, so that hourly reads do not carry
 * twelve slots' histograms each.
 */

import { createHash } from "node:crypto";
import type { OutputType } from "../schemas/metric.ts";
import { truncateText } from "../store/item-budget.ts";

/**
 * `ms`: bucket length; `item`: the stored item that holds the tier's buckets, spanning
 * `itemMs` — as numbered slots (`count@05`) when `slotted`, as plain attributes (`count`)
 * otherwise. Each tier has items of its own, so a read fetches only the resolution it needs
 * (sharing items halves the writes but made reads of long ranges 2–3× slower: the coarse
 * buckets then carry every fine bucket's histogram).
 */
export const TIERS = [
  { name: "5m", ms: 5 * 60_000, item: "5m", itemMs: 3_600_000, slotted: true },
  { name: "1h", ms: 3_600_000, item: "1h", itemMs: 3_600_000, slotted: false },
  { name: "1d", ms: 86_400_000, item: "1d", itemMs: 86_400_000, slotted: false },
  { name: "10d", ms: 864_000_000, item: "10d", itemMs: 864_000_000, slotted: false },
] as const;
export type TierName = (typeof TIERS)[number]["name"];
const tierNamed = (name: TierName) => TIERS.find((tier) => tier.name === name) ?? TIERS[0];

/**
 * The tier whose items hold `tier`'s buckets for a metric: hours come from the 5-minute
 * items unless every value of the metric wrote hour items (`hourItems`, see index-store).
 */
export const storedTier = (tier: TierName, hourItems: boolean): TierName => (tier === "1h" && !hourItems ? "5m" : tier);

export interface RollupInput {
  orgId: string;
  slug: string;
  outputType: OutputType;
  /** Latency-like metric: the analytics API reports its p95 instead of its average. */
  histogram: boolean;
  /** agentId, environmentId and the call's properties. */
  labels: Record<string, string>;
  /** The call's startedAt: values are charted by when the call happened. */
  at: string;
  /** The value as a number; undefined for CLASSIFICATION/TEXT (counted only). */
  numeric?: number;
  /** A CLASSIFICATION value's labels: each is counted on its own (`classLabels`). */
  classes?: string[];
  /** The value was deleted (with its call): its contribution is taken back out. */
  removed?: boolean;
}

/** What the rollups need of a value (its output type and labels are in the analytics index). */
export type RollupContribution = Pick<
  RollupInput,
  "orgId" | "slug" | "histogram" | "at" | "numeric" | "classes" | "removed"
> &
  ({ labels: Record<string, string> } | { labelSet: string });

/** BOOLEAN counts as 1/0; numbers are themselves; CLASSIFICATION and TEXT are counted only. */
export function numericValue(value: unknown, outputType: OutputType): number | undefined {
  if (outputType === "BOOLEAN") return value === true ? 1 : value === false ? 0 : undefined;
  if (outputType === "CLASSIFICATION" || outputType === "TEXT") return undefined;
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

/** A CLASSIFICATION value's labels, bounded as label values are; undefined for other types. */
export function classLabels(value: unknown, outputType: OutputType): string[] | undefined {
  if (outputType !== "CLASSIFICATION") return undefined;
  const labels = Array.isArray(value) ? value : typeof value === "string" ? [value] : [];
  return [...new Set(labels.filter((label) => typeof label === "string").map(boundedLabelValue))];
}

/** A bucket's count of one CLASSIFICATION label: `c:<label>` (bounded, so the item stays small). */
export const CLASS_COUNT_PREFIX = "c:";

/** Longest label value kept as it is: longer ones keep a prefix and a hash of the whole. */
export const MAX_LABEL_VALUE_CHARS = 64;
const LABEL_HASH_CHARS = 12;

/**
 * A label value as stored and matched: values up to MAX_LABEL_VALUE_CHARS as they are,
 * longer ones as a prefix, an ellipsis and a hash, so distinct values stay distinct while a
 * label set of 50 properties stays a few KB (it is written with every value's rollup).
 */
export function boundedLabelValue(value: string): string {
  if (value.length <= MAX_LABEL_VALUE_CHARS) return value;
  const hash = createHash("sha256").update(value).digest("hex").slice(0, LABEL_HASH_CHARS);
  // The prefix ends with an ellipsis: "#" and the hash make up the rest.
  return `${truncateText(value, MAX_LABEL_VALUE_CHARS - LABEL_HASH_CHARS - 1)}#${hash}`;
}

export function labelsOf(call: { agentId: string; environmentId?: string; properties?: Record<string, string> }) {
  const labels: Record<string, string> = {
    ...(call.properties ?? {}),
    agentId: call.agentId,
    ...(call.environmentId ? { environmentId: call.environmentId } : {}),
  };
  for (const [name, value] of Object.entries(labels)) labels[name] = boundedLabelValue(value);
  return labels;
}

export const labelSetId = (labels: Record<string, string>) =>
  createHash("sha256")
    .update(JSON.stringify(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b))))
    .digest("hex")
    .slice(0, 16);

const bucketStart = (atMs: number, tierMs: number) => Math.floor(atMs / tierMs) * tierMs;

/** How every rollup item's key of an organization starts. */
export const rollupKeyPrefix = (orgId: string) => `ORG#${orgId}#ROLLUP#`;

/** The item holding the `tier` bucket that starts at `startMs`. */
export function rollupKey(orgId: string, slug: string, labelSet: string, tier: TierName, startMs: number) {
  const { item, itemMs } = tierNamed(tier);
  return {
    pk: `${rollupKeyPrefix(orgId)}${slug}#${labelSet}#${item}`,
    sk: new Date(bucketStart(startMs, itemMs)).toISOString(),
  };
}

// ---- histogram: log buckets with γ = 1.02 (±1 % relative error); sign in the attribute name
const GAMMA = 1.02;
const LOG_GAMMA = Math.log(GAMMA);
const MIN_MAGNITUDE = 1e-9;

export function histogramBucket(value: number): string {
  if (Math.abs(value) < MIN_MAGNITUDE) return "hz";
  const index = Math.ceil(Math.log(Math.abs(value)) / LOG_GAMMA);
  return value > 0 ? `hp${index}` : `hn${index}`;
}

function bucketValue(name: string): number {
  if (name === "hz") return 0;
  const index = Number(name.slice(2));
  // The bucket's midpoint in log space: within ±1 % of every value in it.
  const magnitude = (2 * GAMMA ** index) / (1 + GAMMA);
  return name.startsWith("hp") ? magnitude : -magnitude;
}

/** The q-quantile (0–1) of merged histogram counts. */
export function quantile(histogram: Map<string, number>, q: number): number | undefined {
  const entries = [...histogram.entries()].filter(([, n]) => n > 0).sort(([a], [b]) => bucketValue(a) - bucketValue(b));
  const total = entries.reduce((sum, [, n]) => sum + n, 0);
  if (total === 0) return undefined;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (const [bucket, n] of entries) {
    seen += n;
    if (seen >= rank) return bucketValue(bucket);
  }
  return bucketValue(entries.at(-1)?.[0] ?? "hz");
}

/** Attribute name of a bucket's field in its item: `count`, or `count@05` for slot 5 of a block. */
const slotted = (name: string, slot: number | undefined) =>
  slot === undefined ? name : `${name}@${String(slot).padStart(2, "0")}`;

/** Increments to apply, merged per rollup item (a transaction may touch an item once). */
export function rollupIncrements(inputs: RollupContribution[]) {
  const increments = new Map<string, { key: { pk: string; sk: string }; adds: Map<string, number> }>();
  const add = (adds: Map<string, number>, name: string, n: number) => adds.set(name, (adds.get(name) ?? 0) + n);
  for (const input of inputs) {
    const labelSet = "labelSet" in input ? input.labelSet : labelSetId(input.labels);
    const atMs = Date.parse(input.at);
    // Counts, sums and histogram buckets are all additive: a removal adds the same, negated.
    const sign = input.removed ? -1 : 1;
    for (const tier of TIERS) {
      // Buckets stored in another tier's items (a non-histogram hour) are not written twice.
      if (storedTier(tier.name, input.histogram) !== tier.name) continue;
      const itemStart = bucketStart(atMs, tier.itemMs);
      const slot = tier.slotted ? Math.floor((atMs - itemStart) / tier.ms) : undefined;
      const key = rollupKey(input.orgId, input.slug, labelSet, tier.name, itemStart);
      const id = `${key.pk}|${key.sk}`;
      const entry = increments.get(id) ?? { key, adds: new Map<string, number>() };
      add(entry.adds, slotted("count", slot), sign);
      for (const label of input.classes ?? []) add(entry.adds, slotted(CLASS_COUNT_PREFIX + label, slot), sign);
      if (input.numeric !== undefined) {
        add(entry.adds, slotted("sum", slot), sign * input.numeric);
        if (input.histogram) add(entry.adds, slotted(histogramBucket(input.numeric), slot), sign);
      }
      increments.set(id, entry);
    }
  }
  return [...increments.values()];
}

/** The buckets of `tier` stored in one rollup item: its plain attributes, or its slots. */
export function bucketsOf(
  item: Record<string, unknown>,
  tier: TierName,
): { at: number; fields: Record<string, number> }[] {
  const { ms, slotted } = tierNamed(tier);
  const start = Date.parse(String(item.sk));
  const plain: Record<string, number> = {};
  const slots = new Map<number, Record<string, number>>();
  for (const [name, value] of Object.entries(item)) {
    if (name === "pk" || name === "sk" || typeof value !== "number") continue;
    // Every attribute of a slotted item ends in its slot; a label counted in a plain item may hold "@".
    const at = slotted ? name.lastIndexOf("@") : -1;
    if (at === -1) plain[name] = value;
    else {
      const slot = Number(name.slice(at + 1));
      const fields = slots.get(slot) ?? {};
      fields[name.slice(0, at)] = value;
      slots.set(slot, fields);
    }
  }
  if (!slotted) return Object.keys(plain).length > 0 ? [{ at: start, fields: plain }] : [];
  return [...slots].map(([slot, fields]) => ({ at: start + slot * ms, fields }));
}

export type RollupIncrement = ReturnType<typeof rollupIncrements>[number];

/** The ADD update that applies one increment (inside the value's exactly-once transaction). */
export function rollupUpdate(rollup: RollupIncrement) {
  const names: Record<string, string> = {};
  const values: Record<string, number> = {};
  const clauses: string[] = [];
  [...rollup.adds].forEach(([attribute, n], index) => {
    names[`#a${index}`] = attribute;
    values[`:a${index}`] = n;
    clauses.push(`#a${index} :a${index}`);
  });
  return {
    Key: rollup.key,
    UpdateExpression: `ADD ${clauses.join(", ")}`,
    ExpressionAttributeNames: names,
    ExpressionAttributeValues: values,
  };
}

/** The item a sequence of ADD updates with these increments leaves on a fresh table. */
export const rollupItem = (rollup: RollupIncrement): Record<string, unknown> => ({
  ...rollup.key,
  ...Object.fromEntries(rollup.adds),
});
