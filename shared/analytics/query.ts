/**
 * The analytics queries: read rollups (never raw values) for the label sets that pass the
 * filters, over a range decomposed into whole UTC days, hours and 5-minute buckets.
 */
import { mapLimit } from "../concurrency.ts";
import type { OutputType } from "../schemas/metric.ts";
import { batchGet } from "../store/batch-get.ts";
import { queryAll } from "../store/query.ts";
import { indexedLabelSets, indexedMetrics } from "./index-store.ts";
import {
  boundedLabelValue,
  bucketsOf,
  CLASS_COUNT_PREFIX,
  quantile,
  rollupKey,
  storedTier,
  TIERS,
  type TierName,
} from "./rollup.ts";
import { FIVE_MINUTES, invalidParameter } from "./time.ts";

export type Aggregation = "sum" | "avg" | "p95" | "count";

/** Counters add up, gauges average, histogram metrics report p95, labels only count. */
export function aggregationFor(outputType: OutputType, histogram: boolean): Aggregation {
  if (outputType === "CLASSIFICATION" || outputType === "TEXT") return "count";
  if (outputType === "BOOLEAN" || outputType === "COUNT") return "sum";
  return histogram ? "p95" : "avg";
}

export interface Stats {
  count: number;
  sum: number;
  hist: Map<string, number>;
  /** CLASSIFICATION: values per label. */
  classes: Map<string, number>;
}
export const emptyStats = (): Stats => ({ count: 0, sum: 0, hist: new Map(), classes: new Map() });

const addTo = (counts: Map<string, number>, name: string, n: number) => counts.set(name, (counts.get(name) ?? 0) + n);

function addItem(stats: Stats, item: Record<string, number>, sign: 1 | -1 = 1) {
  stats.count += sign * Number(item.count ?? 0);
  stats.sum += sign * Number(item.sum ?? 0);
  for (const [name, value] of Object.entries(item)) {
    if (/^h(z|p-?\d+|n-?\d+)$/.test(name)) addTo(stats.hist, name, sign * Number(value));
    else if (name.startsWith(CLASS_COUNT_PREFIX))
      addTo(stats.classes, name.slice(CLASS_COUNT_PREFIX.length), sign * Number(value));
  }
}

export function merge(into: Stats, from: Stats) {
  into.count += from.count;
  into.sum += from.sum;
  for (const [bucket, n] of from.hist) addTo(into.hist, bucket, n);
  for (const [label, n] of from.classes) addTo(into.classes, label, n);
}

/** 12 significant digits: float sums (and the subtractions of `plan`) never show as 0.30000000000000004. */
const rounded = (value: number) => Number(value.toPrecision(12));

export function finalValue(stats: Stats, aggregation: Aggregation): number | undefined {
  if (stats.count <= 0) return undefined;
  switch (aggregation) {
    case "count":
      return stats.count;
    case "sum":
      return rounded(stats.sum);
    case "avg":
      return rounded(stats.sum / stats.count);
    case "p95":
      return quantile(stats.hist, 0.95);
  }
}

export interface NamedStats {
  value: number;
  aggregation: Aggregation;
  count: number;
  sum?: number;
  average?: number;
  p95?: number;
  passRate?: number;
  labels?: Record<string, number>;
}

/** Every statistic that applies to the metric's type, named, beside its plain value. */
export function namedStats(stats: Stats, aggregation: Aggregation, outputType: OutputType): NamedStats | undefined {
  const value = finalValue(stats, aggregation);
  if (value === undefined) return undefined;
  // Classifications and texts carry no number: their count (per label) is all there is.
  if (aggregation === "count") {
    const labels = [...stats.classes].filter(([, n]) => n > 0).sort(([a], [b]) => a.localeCompare(b));
    return {
      value,
      aggregation,
      count: stats.count,
      ...(outputType === "CLASSIFICATION" ? { labels: Object.fromEntries(labels) } : {}),
    };
  }
  const average = rounded(stats.sum / stats.count);
  return {
    value,
    aggregation,
    count: stats.count,
    sum: rounded(stats.sum),
    average,
    ...(aggregation === "p95" ? { p95: value } : {}),
    ...(outputType === "BOOLEAN" ? { passRate: average } : {}),
  };
}

const TIER_MS: Record<TierName, number> = Object.fromEntries(TIERS.map((t) => [t.name, t.ms])) as never;
const TIER_ITEM_MS: Record<TierName, number> = Object.fromEntries(TIERS.map((t) => [t.name, t.itemMs])) as never;

/** [from, to) as whole days, then hours, then 5-minute buckets at the edges. */
export function decompose(from: number, to: number): { tier: TierName; from: number; to: number }[] {
  const segments: { tier: TierName; from: number; to: number }[] = [];
  const split = (a: number, b: number, tierIndex: number) => {
    if (a >= b) return;
    const tier = TIERS[tierIndex];
    if (!tier) return;
    if (tierIndex === 0) {
      segments.push({ tier: tier.name, from: a, to: b });
      return;
    }
    const first = Math.ceil(a / tier.ms) * tier.ms;
    const last = Math.floor(b / tier.ms) * tier.ms;
    if (first < last) {
      segments.push({ tier: tier.name, from: first, to: last });
      split(a, first, tierIndex - 1);
      split(last, b, tierIndex - 1);
    } else split(a, b, tierIndex - 1);
  };
  split(Math.floor(from / FIVE_MINUTES) * FIVE_MINUTES, Math.floor(to / FIVE_MINUTES) * FIVE_MINUTES, TIERS.length - 1);
  return segments;
}

/** Buckets of one label set in one tier starting in [from, to) (both on the tier's grid). */
async function readTier(orgId: string, slug: string, labelSet: string, tier: TierName, from: number, to: number) {
  const key = rollupKey(orgId, slug, labelSet, tier, from);
  const itemMs = TIER_ITEM_MS[tier];
  const items = await queryAll({
    KeyConditionExpression: "pk = :pk AND sk BETWEEN :from AND :to",
    ExpressionAttributeValues: {
      ":pk": key.pk,
      ":from": new Date(Math.floor(from / itemMs) * itemMs).toISOString(),
      ":to": new Date(Math.floor((to - TIER_MS[tier]) / itemMs) * itemMs).toISOString(),
    },
  });
  return bucketsIn(items, tier, from, to);
}

const bucketsIn = (items: Record<string, unknown>[], tier: TierName, from: number, to: number) =>
  items.flatMap((item) => bucketsOf(item, tier)).filter((bucket) => bucket.at >= from && bucket.at < to);

/** Items by key (`pk|sk`), missing ones left out. */
async function getItems(keys: { pk: string; sk: string }[]): Promise<Map<string, Record<string, unknown>>> {
  const unique = [...new Map(keys.map((key) => [`${key.pk}|${key.sk}`, key])).values()];
  const items = await batchGet(unique, { requestsInFlight: QUERY_CONCURRENCY });
  return new Map(items.map((item) => [`${item.pk}|${item.sk}`, item]));
}

/** Queries in flight per API request. */
const QUERY_CONCURRENCY = 32;
/** Windows of at most this many items are read by key (BatchGetItem) rather than queried. */
const KEYED_WINDOW_ITEMS = 24;
/** Segments of one tier at most this many buckets apart may be read with one query. */
const MERGE_GAP_BUCKETS = 48;

export interface Target {
  slug: string;
  labelSet: string;
  /** Hours are stored in hour items (IndexedMetric.hourItems), else summed from 5-minute slots. */
  hourItems: boolean;
}

interface Window {
  tier: TierName;
  from: number;
  to: number;
  segments: Segment[];
}

interface Segment {
  tier: TierName;
  from: number;
  to: number;
  range: number;
  /** +1 adds the buckets to the range, −1 takes them away (see `plan`). */
  sign: 1 | -1;
}

const DAY_MS = 86_400_000;

/** Items a set of segments reads (one per hour for the 5-minute blocks). */
function itemsRead(segments: { tier: TierName; from: number; to: number }[]): number {
  return segments.reduce((n, s) => {
    const itemMs = TIER_ITEM_MS[s.tier];
    return n + Math.ceil(s.to / itemMs) - Math.floor(s.from / itemMs);
  }, 0);
}

/**
 * The cheapest way to read [from, to): its own decomposition, or a longer range that starts
 * (or ends) on a UTC day minus the part outside — counts, sums and histogram counts subtract
 * exactly. A day in New York is then one day item minus and plus five hours instead of 24
 * hours; in Kolkata one day item and 5½ hours on either side.
 */
export function plan(from: number, to: number): { tier: TierName; from: number; to: number; sign: 1 | -1 }[] {
  const plus = (a: number, b: number) => decompose(a, b).map((s) => ({ ...s, sign: 1 as const }));
  const minus = (a: number, b: number) => decompose(a, b).map((s) => ({ ...s, sign: -1 as const }));
  const dayBefore = Math.floor(from / DAY_MS) * DAY_MS;
  const dayAfter = Math.ceil(to / DAY_MS) * DAY_MS;
  const candidates = [
    plus(from, to),
    [...plus(dayBefore, to), ...minus(dayBefore, from)],
    [...plus(from, dayAfter), ...minus(to, dayAfter)],
    [...plus(dayBefore, dayAfter), ...minus(dayBefore, from), ...minus(to, dayAfter)],
  ];
  return candidates.reduce((best, candidate) => (itemsRead(candidate) < itemsRead(best) ? candidate : best));
}

/**
 * Stats of each target over each of several disjoint ranges (e.g. the days of `daily`).
 * Every range is decomposed into whole UTC days, hours and 5-minute edges; segments of one
 * tier that lie close together are read with one query, so N days cost a few queries per
 * target, not N. Returns stats[target][range].
 */
export async function statsByRange(
  orgId: string,
  targets: Target[],
  ranges: { from: number; to: number }[],
): Promise<Stats[][]> {
  // Each range takes its cheapest plan: the days of `daily` in New York read one day item and
  // the few hours around each local midnight (shared by the two days it separates, fetched
  // once), not every hour of the range.
  const segments: Segment[] = ranges.flatMap((r, range) => plan(r.from, r.to).map((s) => ({ ...s, range })));
  const byTier = new Map<TierName, Segment[]>();
  for (const segment of segments) byTier.set(segment.tier, [...(byTier.get(segment.tier) ?? []), segment]);
  const windows: Window[] = [];
  for (const [tier, own] of byTier) {
    own.sort((a, b) => a.from - b.from);
    let current: (typeof windows)[number] | undefined;
    for (const segment of own) {
      // Merge across a gap no wider than the segments on either side (and the cap): one query
      // then reads at most about twice the items it needs; short windows are read by key anyway.
      const previous = current?.segments.at(-1);
      const gapLimit = previous
        ? Math.min(MERGE_GAP_BUCKETS * TIER_MS[tier], segment.to - segment.from, previous.to - previous.from)
        : 0;
      if (current && segment.from - current.to <= gapLimit) {
        current.to = Math.max(current.to, segment.to);
        current.segments.push(segment);
      } else {
        current = { tier, from: segment.from, to: segment.to, segments: [segment] };
        windows.push(current);
      }
    }
  }
  const stats = targets.map(() => ranges.map(emptyStats));
  const assign = (index: number, window: Window, buckets: { at: number; fields: Record<string, number> }[]) => {
    // Segments of a window may overlap (one range adds what the next one takes away).
    buckets.sort((a, b) => a.at - b.at);
    for (const segment of window.segments) {
      const into = stats[index]?.[segment.range];
      if (!into) continue;
      let low = 0;
      let high = buckets.length;
      while (low < high) {
        const mid = (low + high) >> 1;
        if ((buckets[mid] as { at: number }).at < segment.from) low = mid + 1;
        else high = mid;
      }
      for (let i = low; i < buckets.length && (buckets[i] as { at: number }).at < segment.to; i++) {
        addItem(into, (buckets[i] as { fields: Record<string, number> }).fields, segment.sign);
      }
    }
  };
  // Short windows (the 10-day and day items of a long range, the edges of each local day) are
  // fetched by key, a hundred keys per request across targets; long ones are queried.
  const itemStarts = (w: Window) => {
    const itemMs = TIER_ITEM_MS[w.tier];
    const starts = new Set<number>();
    for (const segment of w.segments) {
      for (let at = Math.floor(segment.from / itemMs) * itemMs; at < segment.to; at += itemMs) starts.add(at);
    }
    return [...starts];
  };
  const tasks = targets.flatMap((target, index) => windows.map((window) => ({ target, index, window })));
  const [small, large] = [
    tasks.filter((t) => itemsRead(t.window.segments) <= KEYED_WINDOW_ITEMS),
    tasks.filter((t) => itemsRead(t.window.segments) > KEYED_WINDOW_ITEMS),
  ];
  // Hour items and 5-minute items both span an hour: the same windows read either.
  const keyOf = (target: Target, tier: TierName, start: number) =>
    rollupKey(orgId, target.slug, target.labelSet, storedTier(tier, target.hourItems), start);
  const byKey = await getItems(
    small.flatMap(({ target, window }) => itemStarts(window).map((start) => keyOf(target, window.tier, start))),
  );
  for (const { target, index, window } of small) {
    const items = itemStarts(window).flatMap((start) => {
      const key = keyOf(target, window.tier, start);
      const item = byKey.get(`${key.pk}|${key.sk}`);
      return item ? [item] : [];
    });
    assign(index, window, bucketsIn(items, storedTier(window.tier, target.hourItems), window.from, window.to));
  }
  await mapLimit(large, QUERY_CONCURRENCY, async ({ target, index, window }) => {
    const tier = storedTier(window.tier, target.hourItems);
    assign(index, window, await readTier(orgId, target.slug, target.labelSet, tier, window.from, window.to));
  });
  return stats;
}

/**
 * Per step over [from, to) for each target: buckets start at `from` + k × step, read from
 * the coarsest tier that divides the step and on which `from` and `to` lie.
 */
export async function seriesByTarget(orgId: string, targets: Target[], from: number, to: number, stepMs: number) {
  const tier =
    [...TIERS].reverse().find((t) => stepMs % t.ms === 0 && from % t.ms === 0 && to % t.ms === 0) ?? TIERS[0];
  const start = Math.floor(from / tier.ms) * tier.ms;
  return mapLimit(targets, QUERY_CONCURRENCY, async (target) => {
    const read = await readTier(
      orgId,
      target.slug,
      target.labelSet,
      storedTier(tier.name, target.hourItems),
      start,
      to,
    );
    const buckets = new Map<number, Stats>();
    for (const { at, fields } of read) {
      if (at < from || at >= to) continue;
      const bucket = from + Math.floor((at - from) / stepMs) * stepMs;
      const stats = buckets.get(bucket) ?? emptyStats();
      addItem(stats, fields);
      buckets.set(bucket, stats);
    }
    return buckets;
  });
}

export interface LabelFilter {
  agentId?: string;
  environmentId?: string;
  tags?: Record<string, string>;
}

/** Labels are stored bounded (see boundedLabelValue): filter values are compared the same way. */
function matchesFilter(labels: Record<string, string>, filter: LabelFilter): boolean {
  const is = (stored: string | undefined, wanted: string) => stored === boundedLabelValue(wanted);
  if (filter.agentId && !is(labels.agentId, filter.agentId)) return false;
  if (filter.environmentId && !is(labels.environmentId, filter.environmentId)) return false;
  return Object.entries(filter.tags ?? {}).every(([key, value]) => is(labels[key], value));
}

/** The metrics asked for (every metric with values when none are named). */
export async function resolveMetrics(orgId: string, names: string[] | undefined) {
  const indexed = await indexedMetrics(orgId);
  if (!names) return indexed;
  const bySlug = new Map(indexed.map((m) => [m.slug, m]));
  // A name without values is not an error: it simply has no data (yet).
  return names.map(
    (slug) => bySlug.get(slug) ?? { slug, outputType: "NUMERIC" as OutputType, histogram: false, hourItems: false },
  );
}

export async function labelSetsFor(orgId: string, slug: string, filter: LabelFilter) {
  return (await indexedLabelSets(orgId, slug)).filter((set) => matchesFilter(set.labels, filter));
}

export const MAX_POINTS = 11_000;

export function parseStep(step: string): number {
  const match = /^(\d+)(m|h|d)$/.exec(step);
  const ms = match ? Number(match[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as "m" | "h" | "d"] : NaN;
  if (!match || ms < FIVE_MINUTES || ms > 86_400_000 || ms % FIVE_MINUTES !== 0) {
    throw invalidParameter("step", `step "${step}" must be a multiple of 5m between 5m and 1d, e.g. 5m, 1h, 1d`);
  }
  return ms;
}
