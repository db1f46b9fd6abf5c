/**
 * The small index the analytics API enumerates instead of scanning: which metrics have
 * values (with their output type) and which label sets each metric has seen.
 */
import type { OutputType } from "../schemas/metric.ts";
import { batchPut } from "../store/batch-write.ts";
import { queryAll } from "../store/query.ts";
import { tableName } from "../store/table.ts";
import { labelSetId, type RollupInput } from "./rollup.ts";

const metricsPartition = (orgId: string) => `ORG#${orgId}#ANALYTICS#METRICS`;
/**
 * Marks a metric some of whose values wrote no hour items (they had no histogram, see
 * rollup.ts): its hours are read from 5-minute items even once it keeps a histogram. Its
 * sort key starts with "#", which no slug does.
 */
const HOURS_FROM_SLOTS = "AnalyticsHoursFromSlots";
const hoursFromSlotsKey = (slug: string) => `#hours-from-5m#${slug}`;
const labelSetsPartition = (orgId: string, slug: string) => `ORG#${orgId}#ANALYTICS#LABELSETS#${slug}`;

/**
 * Index items this container has already written. A label set is its labels and never
 * changes, so a warm evaluator writes each one once instead of once per batch.
 */
const written = new Set<string>();
const WRITTEN_CAP = 100_000;

export async function indexRollups(inputs: RollupInput[]): Promise<void> {
  const items = new Map<string, Record<string, unknown>>();
  for (const input of inputs) {
    // The type is part of the id: a definition updated to another type or histogram flag is re-indexed.
    items.set(`m|${input.orgId}|${input.slug}|${input.outputType}|${input.histogram}`, {
      pk: metricsPartition(input.orgId),
      sk: input.slug,
      entity: "AnalyticsMetric",
      slug: input.slug,
      outputType: input.outputType,
      histogram: input.histogram,
    });
    if (!input.histogram) {
      items.set(`h|${input.orgId}|${input.slug}`, {
        pk: metricsPartition(input.orgId),
        sk: hoursFromSlotsKey(input.slug),
        entity: HOURS_FROM_SLOTS,
        slug: input.slug,
      });
    }
    const labelSet = labelSetId(input.labels);
    items.set(`l|${input.orgId}|${input.slug}|${labelSet}`, {
      pk: labelSetsPartition(input.orgId, input.slug),
      sk: labelSet,
      entity: "AnalyticsLabelSet",
      labels: input.labels,
    });
  }
  const table = tableName();
  const all = [...items.entries()].filter(([id]) => !written.has(`${table}|${id}`)).map(([, item]) => item);
  await batchPut(all);
  if (written.size > WRITTEN_CAP) written.clear();
  for (const id of items.keys()) written.add(`${table}|${id}`);
}

const partitionItems = (pk: string) =>
  queryAll({ KeyConditionExpression: "pk = :pk", ExpressionAttributeValues: { ":pk": pk } });

export interface IndexedMetric {
  slug: string;
  outputType: OutputType;
  histogram: boolean;
  /** Every value wrote an hour item: hours are read from hour items, not from 5-minute slots. */
  hourItems: boolean;
}

export async function indexedMetrics(orgId: string): Promise<IndexedMetric[]> {
  const items = await partitionItems(metricsPartition(orgId));
  const hoursFromSlots = new Set(items.filter((item) => item.entity === HOURS_FROM_SLOTS).map((item) => item.slug));
  return items
    .filter((item) => item.entity !== HOURS_FROM_SLOTS)
    .map((item) => ({
      slug: String(item.slug),
      outputType: item.outputType as OutputType,
      histogram: item.histogram === true,
      hourItems: item.histogram === true && !hoursFromSlots.has(item.slug),
    }));
}

export async function indexedLabelSets(
  orgId: string,
  slug: string,
): Promise<{ id: string; labels: Record<string, string> }[]> {
  return (await partitionItems(labelSetsPartition(orgId, slug))).map((item) => ({
    id: String(item.sk),
    labels: item.labels as Record<string, string>,
  }));
}
