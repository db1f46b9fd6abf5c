import { keys } from "../keys.ts";
import type { CollectionJob, MetricValue } from "../schemas/job.ts";
import { getMetricVersions } from "./metrics.ts";
import { type PagedQuery, type PageKey, queryAll, queryPage } from "./query.ts";

type Item = Record<string, unknown>;
const storageFields = new Set(["pk", "sk", "entity", "gsi1pk", "gsi1sk", "orgId", "expiresAt"]);

export const toMetricValue = (item: Item): MetricValue =>
  ({
    ...keys.parseItemResult(String(item.pk), String(item.sk)),
    ...Object.fromEntries(Object.entries(item).filter(([k]) => !storageFields.has(k))),
  }) as never;

interface ValueQuery {
  limit: number;
  after?: PageKey;
  status: "success" | "all";
}

const successOnly = (status: ValueQuery["status"]): PagedQuery["filter"] =>
  status === "success"
    ? {
        FilterExpression: "captureStatus = :success",
        ExpressionAttributeValues: { ":success": "SUCCESS" },
      }
    : undefined;

export const listCallValues = (orgId: string, callId: string, query: ValueQuery) =>
  queryPage(
    {
      partition: ["gsi1pk", keys.callValues(orgId, callId)],
      sortKeyName: "gsi1sk",
      indexName: "gsi1",
      newestFirst: true,
      limit: query.limit,
      after: query.after,
      filter: successOnly(query.status),
    },
    toMetricValue,
  );

/** A metric definition version's values, in the grouped shape Roark's API answers with. */
interface MetricGroup {
  metricId: string;
  version: number;
  /** A job's frozen slug and name; empty for a call's values, read from the version. */
  slug: string;
  name: string;
}

async function groupByMetric(orgId: string, groups: MetricGroup[], values: MetricValue[]) {
  const definitions = await getMetricVersions(
    orgId,
    groups.map((group) => ({ metricId: group.metricId, version: group.version })),
  );
  return groups.map((group) => {
    const definition = definitions.get(`${group.metricId}@${group.version}`);
    const slug = group.slug || definition?.slug || group.metricId;
    return {
      metricDefinitionId: group.metricId,
      slug,
      metricId: `${slug}@${group.version}`,
      name: definition?.name ?? group.name,
      description: definition?.description ?? "",
      type: definition?.outputType,
      ...(definition?.unit ? { unit: definition.unit } : {}),
      values: values.filter((v) => v.metricDefinitionId === group.metricId && v.metricVersion === group.version),
    };
  });
}

/** One page of a job's values, grouped by metric definition as the API documents. */
export async function listJobValuesByMetric(orgId: string, job: CollectionJob, query: ValueQuery) {
  const valuesPage = await queryPage(
    {
      partition: ["pk", keys.job(orgId, job.id).pk],
      sortKeyName: "sk",
      sortKeyPrefix: keys.itemResultPrefix,
      limit: query.limit,
      after: query.after,
      filter: successOnly(query.status),
    },
    toMetricValue,
  );
  const groups = job.metrics.map((metric) => ({ ...metric, metricId: metric.id }));
  return { items: await groupByMetric(orgId, groups, valuesPage.items), nextKey: valuesPage.nextKey };
}

/**
 * One page of a call's values across jobs, newest first, grouped per metric definition
 * version in the shape of a job's values (the page holds a slice of each group).
 */
export async function listCallValuesByMetric(orgId: string, callId: string, query: ValueQuery) {
  const valuesPage = await listCallValues(orgId, callId, query);
  const seen = new Map<string, MetricGroup>();
  for (const value of valuesPage.items) {
    const key = `${value.metricDefinitionId}@${value.metricVersion}`;
    if (!seen.has(key)) {
      seen.set(key, { metricId: value.metricDefinitionId, version: value.metricVersion, slug: "", name: "" });
    }
  }
  return { items: await groupByMetric(orgId, [...seen.values()], valuesPage.items), nextKey: valuesPage.nextKey };
}

/** Every (call, metric) pair of a job whose value is ERROR, read page by page. */
export async function listFailedItems(orgId: string, jobId: string): Promise<{ callId: string; metricId: string }[]> {
  const items = await queryAll({
    KeyConditionExpression: "pk = :pk AND begins_with(sk, :item)",
    FilterExpression: "captureStatus = :error",
    ProjectionExpression: "pk, sk",
    // Concurrent retries must compute the same items: they write the same retry job's pages.
    ConsistentRead: true,
    ExpressionAttributeValues: {
      ":pk": keys.job(orgId, jobId).pk,
      ":item": keys.itemResultPrefix,
      ":error": "ERROR",
    },
  });
  return items.map((item) => {
    const { callId, metricDefinitionId } = keys.parseItemResult(String(item.pk), String(item.sk));
    return { callId, metricId: metricDefinitionId };
  });
}

/** The sort keys (`ITEM#<call>#<metric>`) of every value recorded for a job: keys only, page by page. */
export async function listRecordedItemKeys(orgId: string, jobId: string): Promise<Set<string>> {
  const items = await queryAll({
    KeyConditionExpression: "pk = :pk AND begins_with(sk, :item)",
    ProjectionExpression: "sk",
    ExpressionAttributeValues: { ":pk": keys.job(orgId, jobId).pk, ":item": keys.itemResultPrefix },
  });
  return new Set(items.map((item) => String(item.sk)));
}

/** Every value of a job, read page by page (callers bound the job's size first). */
export async function listAllJobValues(orgId: string, jobId: string): Promise<MetricValue[]> {
  const items = await queryAll({
    KeyConditionExpression: "pk = :pk AND begins_with(sk, :item)",
    ExpressionAttributeValues: { ":pk": keys.job(orgId, jobId).pk, ":item": keys.itemResultPrefix },
  });
  return items.map(toMetricValue);
}
