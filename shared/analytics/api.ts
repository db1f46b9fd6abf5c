/** The custom-metrics analytics endpoints, over rollups only. */
import { z } from "zod";
import { notFound } from "../errors.ts";
import type { rangeQuerySchema, timeseriesQuerySchema } from "../schemas/analytics.ts";
import { callIdByExternalId, getCall } from "../store/calls.ts";
import { getMetricVersions } from "../store/metrics.ts";
import { recordedValueSums } from "../store/recorded-values.ts";
import { listCallValues } from "../store/values.ts";
import { indexedLabelSets, indexedMetrics } from "./index-store.ts";
import {
  aggregationFor,
  emptyStats,
  finalValue,
  type LabelFilter,
  labelSetsFor,
  MAX_POINTS,
  merge,
  type NamedStats,
  namedStats,
  parseStep,
  resolveMetrics,
  type Stats,
  seriesByTarget,
  statsByRange,
} from "./query.ts";
import { boundedLabelValue, labelsOf, numericValue } from "./rollup.ts";
import { checkTimezone, FIVE_MINUTES, invalidParameter, localDays, parseInstant } from "./time.ts";

const SYSTEM_LABELS = new Set(["agentId", "environmentId"]);
const MAX_RANGE_DAYS = 400;

const list = (value: string | undefined) =>
  value
    ?.split(",")
    .map((s) => s.trim())
    .filter(Boolean);

function parseTags(tags: string | undefined): Record<string, string> | undefined {
  if (tags === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(tags);
  } catch {
    throw invalidParameter("tags", 'tags must be a JSON object of label filters, e.g. {"region":"EU"}');
  }
  const result = z.record(z.string(), z.string()).safeParse(parsed);
  if (!result.success)
    throw invalidParameter("tags", 'tags must be a JSON object of string labels, e.g. {"region":"EU"}');
  return result.data;
}

type RangeQuery = z.infer<typeof rangeQuerySchema>;

function range(query: Pick<RangeQuery, "startDate" | "endDate" | "timezone">) {
  checkTimezone(query.timezone);
  // On the 5-minute grid of the finest rollups.
  const from = Math.floor(parseInstant(query.startDate, query.timezone, "startDate") / FIVE_MINUTES) * FIVE_MINUTES;
  const to = Math.floor(parseInstant(query.endDate, query.timezone, "endDate") / FIVE_MINUTES) * FIVE_MINUTES;
  if (from >= to) throw invalidParameter("endDate", "startDate must be before endDate (at least 5 minutes apart)");
  if (to - from > MAX_RANGE_DAYS * 86_400_000)
    throw invalidParameter("endDate", `the range may span at most ${MAX_RANGE_DAYS} days`);
  return { from, to };
}

const filterOf = (query: { agentId?: string; environmentId?: string; tags?: string }): LabelFilter => ({
  agentId: query.agentId,
  environmentId: query.environmentId,
  tags: parseTags(query.tags),
});

/** Stats per metric (and per group when grouping) over each of several disjoint ranges. */
async function collect(orgId: string, query: RangeQuery, ranges: { from: number; to: number }[]) {
  const metrics = await resolveMetrics(orgId, list(query.metricNames));
  const filter = filterOf(query);
  const groupBy = list(query.groupBy) ?? [];
  const targets = (
    await Promise.all(
      metrics.map(async (metric) =>
        (
          await labelSetsFor(orgId, metric.slug, filter)
        ).map((set) => ({
          slug: metric.slug,
          labelSet: set.id,
          labels: set.labels,
          hourItems: metric.hourItems,
        })),
      ),
    )
  ).flat();
  const stats = await statsByRange(orgId, targets, ranges);
  const aggregations = new Map(metrics.map((m) => [m.slug, aggregationFor(m.outputType, m.histogram)]));
  /** Per range: groups of label values → merged stats per metric. */
  const perRange = ranges.map((_, range) => {
    const groups = new Map<string, { labels: Record<string, string>; stats: Map<string, Stats> }>();
    targets.forEach((target, index) => {
      const own = stats[index]?.[range];
      if (!own || own.count === 0) return;
      const labels = Object.fromEntries(groupBy.map((name) => [name, target.labels[name] ?? ""]));
      const key = JSON.stringify(labels);
      const group = groups.get(key) ?? { labels, stats: new Map<string, Stats>() };
      const into = group.stats.get(target.slug) ?? emptyStats();
      merge(into, own);
      group.stats.set(target.slug, into);
      groups.set(key, group);
    });
    return [...groups.values()];
  });
  const withStats = query.stats === "true";
  const valuesOf = (byMetric: Map<string, Stats>) =>
    Object.fromEntries(
      metrics.flatMap((m) => {
        const own = byMetric.get(m.slug);
        const aggregation = aggregations.get(m.slug) ?? "avg";
        if (!own) return [];
        const value = withStats ? namedStats(own, aggregation, m.outputType) : finalValue(own, aggregation);
        return value === undefined ? [] : [[m.slug, value]];
      }),
    ) as Record<string, number | NamedStats>;
  return { groupBy, perRange, valuesOf };
}

export async function aggregate(orgId: string, query: RangeQuery) {
  const { from, to } = range(query);
  const { groupBy, perRange, valuesOf } = await collect(orgId, query, [{ from, to }]);
  const groups = perRange[0] ?? [];
  if (groupBy.length === 0) return valuesOf(groups[0]?.stats ?? new Map());
  return groups
    .map((group) => ({ ...group.labels, metrics: valuesOf(group.stats) }))
    .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
}

const byLabels = (a: { labels: Record<string, string> }, b: { labels: Record<string, string> }) =>
  JSON.stringify(a.labels).localeCompare(JSON.stringify(b.labels));

/**
 * One entry per day (in the timezone) with its metrics; with groupBy, one per day and group
 * that has values, its labels beside `metrics`, as aggregate's groups.
 */
export async function daily(orgId: string, query: RangeQuery) {
  const { from, to } = range(query);
  const days = localDays(from, to, query.timezone);
  const { groupBy, perRange, valuesOf } = await collect(orgId, query, days);
  if (groupBy.length === 0) {
    return days.map((day, index) => ({ date: day.date, metrics: valuesOf(perRange[index]?.[0]?.stats ?? new Map()) }));
  }
  return days.flatMap((day, index) =>
    [...(perRange[index] ?? [])]
      .sort(byLabels)
      .map((group) => ({ date: day.date, ...group.labels, metrics: valuesOf(group.stats) })),
  );
}

export async function timeseries(orgId: string, query: z.infer<typeof timeseriesQuerySchema>) {
  const { from, to } = range(query);
  const stepMs = parseStep(query.step);
  const points = Math.ceil((to - from) / stepMs);
  if (points > MAX_POINTS) {
    throw invalidParameter(
      "step",
      `step ${query.step} is too fine for this range: ${points} points, at most ${MAX_POINTS}`,
    );
  }
  const [metric] = await resolveMetrics(orgId, [query.metricName]);
  const aggregation = aggregationFor(metric?.outputType ?? "NUMERIC", metric?.histogram ?? false);
  const sets = await labelSetsFor(orgId, query.metricName, filterOf(query));
  const series = await seriesByTarget(
    orgId,
    sets.map((set) => ({ slug: query.metricName, labelSet: set.id, hourItems: metric?.hourItems ?? false })),
    from,
    to,
    stepMs,
  );
  const result = sets.flatMap((set, index) => {
    const values = [...(series[index] ?? new Map<number, Stats>())]
      .sort(([a], [b]) => a - b)
      .flatMap(([at, stats]) => {
        const value = finalValue(stats, aggregation);
        return value === undefined ? [] : [[at / 1000, String(value)] as [number, string]];
      });
    return values.length > 0 ? [{ metric: { ...set.labels, metric_name: query.metricName }, values }] : [];
  });
  result.sort((a, b) => JSON.stringify(a.metric).localeCompare(JSON.stringify(b.metric)));
  return { resultType: "matrix", result };
}

export async function names(orgId: string, agentId: string | undefined) {
  const metrics = await indexedMetrics(orgId);
  if (!agentId) return metrics.map((m) => m.slug).sort();
  const withAgent = await Promise.all(
    metrics.map(async (m) => ((await labelSetsFor(orgId, m.slug, { agentId })).length > 0 ? m.slug : undefined)),
  );
  return withAgent.filter((slug) => slug !== undefined).sort();
}

/** Label names and their values seen for one metric, or for all of them when none is named. */
export async function tags(orgId: string, metricName: string | undefined, agentId: string | undefined) {
  const metrics = metricName ? [metricName] : (await indexedMetrics(orgId)).map((m) => m.slug);
  const labelSets = (await Promise.all(metrics.map((slug) => indexedLabelSets(orgId, slug)))).flat();
  const values = new Map<string, Set<string>>();
  for (const set of labelSets) {
    if (agentId && set.labels.agentId !== boundedLabelValue(agentId)) continue;
    for (const [label, value] of Object.entries(set.labels)) {
      if (SYSTEM_LABELS.has(label)) continue;
      values.set(label, (values.get(label) ?? new Set()).add(value));
    }
  }
  return Object.fromEntries([...values].sort().map(([label, set]) => [label, [...set].sort()]));
}

/** The latest successful value of each metric for one call, as an instant vector. */
export async function session(orgId: string, callOrExternalId: string) {
  // The call's id, or the session id the client gave it (externalId), as VoiceRun's sessions take.
  const byExternalId = async () => {
    const callId = await callIdByExternalId(orgId, callOrExternalId);
    return callId ? getCall(orgId, callId) : undefined;
  };
  const call = (await getCall(orgId, callOrExternalId)) ?? (await byExternalId());
  if (!call) throw notFound("Call", callOrExternalId);
  const callId = call.id;
  const [page, recorded] = await Promise.all([
    listCallValues(orgId, callId, { limit: 1000, status: "success" }),
    recordedValueSums(orgId, callId),
  ]);
  const latest = new Map<string, (typeof page.items)[number]>();
  for (const value of page.items)
    if (!latest.has(value.metricDefinitionId)) latest.set(value.metricDefinitionId, value);
  const definitions = await getMetricVersions(
    orgId,
    [...latest.values()].map((v) => ({ metricId: v.metricDefinitionId, version: v.metricVersion })),
  );
  const labels = labelsOf(call);
  const at = Date.parse(call.startedAt) / 1000;
  const result = [...latest.values()].flatMap((value) => {
    const definition = definitions.get(`${value.metricDefinitionId}@${value.metricVersion}`);
    if (!definition) return [];
    const numeric = numericValue(value.value, definition.outputType);
    const shown =
      numeric !== undefined
        ? String(numeric)
        : Array.isArray(value.value)
          ? value.value.join(",")
          : String(value.value);
    return [{ metric: { ...labels, metric_name: definition.slug }, value: [at, shown] as [number, string] }];
  });
  // What the agent recorded: each name's values summed.
  for (const [name, sum] of recorded) {
    result.push({ metric: { ...labels, metric_name: name }, value: [at, String(sum)] });
  }
  return { resultType: "vector", result };
}
