import { keys } from "../keys.ts";
import type { CollectionJob, MetricValue } from "../schemas/job.ts";
import { getMetricVersions } from "./metrics.ts";
import { type PagedQuery, type PageKey, queryAll, queryPage } from "./query.ts";

type Item = Record<string, unknown>;
const storageFields = new Set(["pk", "sk", "entity", "gsi1pk", "gsi1sk", "orgId"]);

const toMetricValue = (item: Item): MetricValue =>
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
  const definitions = await getMetricVersions(
    orgId,
    job.metrics.map((metric) => ({ metricId: metric.id, version: metric.version })),
  );
  const data = job.metrics.map((metric) => {
    const definition = definitions.get(`${metric.id}@${metric.version}`);
    return {
      metricDefinitionId: metric.id,
      slug: metric.slug,
      metricId: `${metric.slug}@${metric.version}`,
      name: definition?.name ?? metric.name,
      description: definition?.description ?? "",
      type: definition?.outputType,
      ...(definition?.unit ? { unit: definition.unit } : {}),
      values: valuesPage.items.filter((value) => value.metricDefinitionId === metric.id),
    };
  });
  return { items: data, nextKey: valuesPage.nextKey };
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
