/** Collection jobs: the job item (status + counters) and the pages of call ids it covers. */
import { mapLimit } from "../concurrency.ts";
import { conflict } from "../errors.ts";
import { keys } from "../keys.ts";
import type { CollectionJob, JobStatus, TokenUsage } from "../schemas/job.ts";
import { JOB_ENTITY } from "../stream-entities.ts";
import { batchPut } from "./batch-write.ts";
import { type PageKey, queryAll, queryPage } from "./query.ts";
import { conditionHeld, ifConditionHeld, table } from "./table.ts";

type Item = Record<string, unknown>;
/** Job attributes that sum the token usage and cost of its values (see toCollectionJob). */
export const jobUsageAttributes = {
  inputTokens: "usageInputTokens",
  outputTokens: "usageOutputTokens",
  cacheCreationInputTokens: "usageCacheCreationInputTokens",
  cacheReadInputTokens: "usageCacheReadInputTokens",
  thinkingTokens: "usageThinkingTokens",
} as const;
export const JOB_COST_ATTRIBUTE = "estimatedCostUsd";

const usageFields = Object.values(jobUsageAttributes) as string[];

/** What a job's usage sums: a value, or an attempt no value records. */
export interface BilledUsage {
  usage?: TokenUsage;
  estimatedCostUsd?: number;
}

/** ADD clauses for the usage of `parts` (after a leading comma); empty when none used the LLM. */
export function jobUsageUpdate(parts: BilledUsage[]): {
  expression: string;
  values: Record<string, number>;
  /** The cost added, in millionths of a dollar (for the organization's month spend). */
  micros: number;
} {
  const used = parts.filter((part) => part.usage);
  if (used.length === 0) return { expression: "", values: {}, micros: 0 };
  const sums: Record<string, number> = {};
  const clauses: string[] = [];
  for (const [field, attribute] of Object.entries(jobUsageAttributes)) {
    sums[`:${attribute}`] = used.reduce(
      (sum, p) => sum + (p.usage?.[field as keyof typeof jobUsageAttributes] ?? 0),
      0,
    );
    clauses.push(`${attribute} :${attribute}`);
  }
  // Summed in millionths so float addition cannot drift; DynamoDB adds decimals exactly.
  const micros = used.reduce((sum, p) => sum + Math.round((p.estimatedCostUsd ?? 0) * 1_000_000), 0);
  sums[`:${JOB_COST_ATTRIBUTE}`] = micros / 1_000_000;
  clauses.push(`${JOB_COST_ATTRIBUTE} :${JOB_COST_ATTRIBUTE}`);
  return { expression: `, ${clauses.join(", ")}`, values: sums, micros };
}
const storageFields = new Set([
  "pk",
  "sk",
  "entity",
  "gsi1pk",
  "gsi1sk",
  "orgId",
  "pageCount",
  "llmBlockedReason",
  "deadlineAt",
  "webhookSecret",
  ...usageFields,
]);

/** Statuses a job stops in before running every item: its counters are frozen there. */
const STOPPED_STATUSES: ReadonlySet<string> = new Set(["CANCELED", "EXPIRED"]);

export function toCollectionJob(item: Item): CollectionJob {
  const job = Object.fromEntries(
    Object.entries(item).filter(([k]) => !storageFields.has(k)),
  ) as unknown as CollectionJob;
  // Jobs stored before judge modes existed were judged one request per item.
  job.judgeMode ??= "isolated";
  job.llmMode ??= "realtime";
  // Stored as deadlineAt: `expiresAt` is the table's TTL attribute.
  if (typeof item.deadlineAt === "string") job.expiresAt = item.deadlineAt;
  if (STOPPED_STATUSES.has(job.status)) job.notRunItems = job.totalItems - job.completedItems - job.failedItems;
  if (item[jobUsageAttributes.inputTokens] !== undefined) {
    job.usage = Object.fromEntries(
      Object.entries(jobUsageAttributes).map(([field, attribute]) => [field, Number(item[attribute] ?? 0)]),
    ) as unknown as TokenUsage;
  }
  return job;
}

/**
 * Writes the pages and the running-job marker first and the job last, so a visible job
 * always has all its pages and is always found by the reconciler until it ends. A job with
 * this id that exists already (a caller-chosen id used twice) is a conflict.
 */
export async function putNewJob(
  orgId: string,
  job: CollectionJob,
  pages: string[][],
  secrets: { webhookSecret?: string } = {},
): Promise<void> {
  const { expiresAt, ...stored } = job;
  await batchPut([
    ...pages.map((callIds, index) => ({ ...keys.jobPage(orgId, job.id, index), entity: "JobPage", callIds })),
    {
      ...keys.runningJob(orgId, job.id),
      entity: "RunningJob",
      gsi1pk: keys.runningJobs,
      gsi1sk: markerSortKey(job.createdAt, orgId, job.id),
    },
    ...(expiresAt
      ? [
          {
            ...keys.jobDeadline(orgId, job.id),
            entity: "JobDeadline",
            gsi1pk: keys.jobDeadlines,
            gsi1sk: markerSortKey(expiresAt, orgId, job.id),
          },
        ]
      : []),
  ]);
  const created = await conditionHeld(
    table.put({
      Item: {
        ...keys.job(orgId, job.id),
        entity: JOB_ENTITY,
        gsi1pk: keys.jobList(orgId),
        gsi1sk: keys.listSortKey(job.createdAt, job.id),
        orgId,
        pageCount: pages.length,
        ...stored,
        ...(expiresAt ? { deadlineAt: expiresAt } : {}),
        ...(secrets.webhookSecret ? { webhookSecret: secrets.webhookSecret } : {}),
      },
      ConditionExpression: "attribute_not_exists(pk)",
    }),
  );
  if (!created) throw conflict(`Collection job ${job.id} already exists`, { jobId: job.id });
}

export const getJobItem = (orgId: string, jobId: string, consistent = false): Promise<Item | undefined> =>
  table.get(keys.job(orgId, jobId), { ConsistentRead: consistent });

export async function getJob(orgId: string, jobId: string): Promise<CollectionJob | undefined> {
  const item = await getJobItem(orgId, jobId);
  return item ? toCollectionJob(item) : undefined;
}

export async function getJobPage(orgId: string, jobId: string, page: number): Promise<string[] | undefined> {
  const item = await table.get(keys.jobPage(orgId, jobId, page), { ConsistentRead: true });
  return item?.callIds as string[] | undefined;
}

export const listJobs = (orgId: string, options: { limit: number; after?: PageKey; status?: JobStatus }) =>
  queryPage(
    {
      partition: ["gsi1pk", keys.jobList(orgId)],
      sortKeyName: "gsi1sk",
      indexName: "gsi1",
      newestFirst: true,
      limit: options.limit,
      after: options.after,
      filter: options.status
        ? {
            FilterExpression: "#status = :status",
            ExpressionAttributeNames: { "#status": "status" },
            ExpressionAttributeValues: { ":status": options.status },
          }
        : undefined,
    },
    toCollectionJob,
  );

/**
 * Conditionally moves a job between statuses. Returns the new job, or undefined when the
 * job was not in one of `from` (another writer got there first: callers treat it as done).
 */
export async function transitionJob(
  orgId: string,
  jobId: string,
  from: JobStatus[],
  to: JobStatus,
  extra: Record<string, unknown> = {},
): Promise<CollectionJob | undefined> {
  const now = new Date().toISOString();
  const fields: Record<string, unknown> = { status: to, updatedAt: now, ...extra };
  const names = Object.fromEntries(Object.keys(fields).map((f, i) => [`#f${i}`, f]));
  const values = Object.fromEntries(Object.values(fields).map((v, i) => [`:f${i}`, v]));
  const fromValues = Object.fromEntries(from.map((s, i) => [`:from${i}`, s]));
  const updated = await ifConditionHeld(
    table.update({
      Key: keys.job(orgId, jobId),
      UpdateExpression: `SET ${Object.keys(fields)
        .map((_, i) => `#f${i} = :f${i}`)
        .join(", ")}`,
      ConditionExpression: `attribute_exists(pk) AND #status IN (${Object.keys(fromValues).join(", ")})`,
      ExpressionAttributeNames: { ...names, "#status": "status" },
      ExpressionAttributeValues: { ...values, ...fromValues },
      ReturnValues: "ALL_NEW",
    }),
  );
  return updated ? toCollectionJob(updated) : undefined;
}

/** How a job stops before running every item: its status, and the attribute that says when. */
export type JobStop = { status: "CANCELED"; at: "canceledAt" } | { status: "EXPIRED"; at: "expiredAt" };

/**
 * Stops `seen`, a running job read consistently, only while it is still short of its
 * total. A condition cannot add counters, so each counter may grow only within the slack
 * `seen` left: both growing to their bound still leaves one item unrecorded. Returns
 * undefined when the job moved past that (the caller reads it again).
 */
export async function stopUnfinishedJob(
  orgId: string,
  jobId: string,
  seen: Item,
  stop: JobStop,
): Promise<CollectionJob | undefined> {
  const completed = Number(seen.completedItems ?? 0);
  const failed = Number(seen.failedItems ?? 0);
  const slack = Number(seen.totalItems) - completed - failed - 1;
  if (slack < 0) return undefined;
  const completedSlack = Math.ceil(slack / 2);
  const now = new Date().toISOString();
  const stopped = await ifConditionHeld(
    table.update({
      Key: keys.job(orgId, jobId),
      UpdateExpression: "SET #status = :stopped, #at = :now, updatedAt = :now",
      ConditionExpression:
        "#status = :seenStatus AND (attribute_not_exists(completedItems) OR completedItems <= :maxCompleted) AND (attribute_not_exists(failedItems) OR failedItems <= :maxFailed)",
      ExpressionAttributeNames: { "#status": "status", "#at": stop.at },
      ExpressionAttributeValues: {
        ":stopped": stop.status,
        ":now": now,
        ":seenStatus": seen.status,
        ":maxCompleted": completed + completedSlack,
        ":maxFailed": failed + slack - completedSlack,
      },
      ReturnValues: "ALL_NEW",
    }),
  );
  return stopped ? toCollectionJob(stopped) : undefined;
}

/** The condition that a job still runs (PENDING or PROCESSING), with its placeholders. */
export const jobStillRuns = {
  ConditionExpression: "#status IN (:pending, :processing)",
  ExpressionAttributeNames: { "#status": "status" },
  ExpressionAttributeValues: { ":pending": "PENDING", ":processing": "PROCESSING" },
};

/** Updates a job only while it runs and `update`'s own condition holds; answers whether it did. */
function updateRunningJob(
  orgId: string,
  jobId: string,
  update: { UpdateExpression: string; ConditionExpression: string; ExpressionAttributeValues: Record<string, unknown> },
): Promise<boolean> {
  return conditionHeld(
    table.update({
      Key: keys.job(orgId, jobId),
      UpdateExpression: update.UpdateExpression,
      ConditionExpression: `${update.ConditionExpression} AND ${jobStillRuns.ConditionExpression}`,
      ExpressionAttributeNames: jobStillRuns.ExpressionAttributeNames,
      ExpressionAttributeValues: { ...update.ExpressionAttributeValues, ...jobStillRuns.ExpressionAttributeValues },
    }),
  );
}

/**
 * Marks a running job's LLM calls as futile (rejected key, no credit): later items record
 * ERROR with this reason without calling the model. The first reason wins.
 */
export async function blockJobLlmCalls(orgId: string, jobId: string, reason: string): Promise<void> {
  await updateRunningJob(orgId, jobId, {
    UpdateExpression: "SET llmBlockedReason = :reason, errorMessage = if_not_exists(errorMessage, :reason)",
    ConditionExpression: "attribute_not_exists(llmBlockedReason)",
    ExpressionAttributeValues: { ":reason": reason },
  });
}

/** A marker's index sort key: a time (ISO, no `#`), then the job. */
const markerSortKey = (at: string, orgId: string, jobId: string) => `${at}#${orgId}#${jobId}`;

async function listMarkedJobs(partition: string, before: string): Promise<{ orgId: string; jobId: string }[]> {
  const markers = await queryAll({
    IndexName: "gsi1",
    KeyConditionExpression: "gsi1pk = :partition AND gsi1sk < :before",
    ExpressionAttributeValues: { ":partition": partition, ":before": before },
  });
  return markers.map((marker) => {
    const [, orgId = "", jobId = ""] = String(marker.gsi1sk).split("#");
    return { orgId, jobId };
  });
}

/** The jobs whose running marker is still there and that were created before `createdBefore`. */
export const listRunningJobs = (createdBefore: string) => listMarkedJobs(keys.runningJobs, createdBefore);

/** The jobs whose expiry marker is still there and whose expiry is before `now`. */
export const listJobsPastExpiry = (now: string) => listMarkedJobs(keys.jobDeadlines, now);

/** How long a finished job's pages (its call lists) stay: late dispatch messages come within minutes. */
const FINISHED_PAGE_RETENTION_SECONDS = 7 * 24 * 3600;

/** A finished job's pages expire (DynamoDB's TTL): the job, its values and counters stay. */
export async function expireJobPages(orgId: string, jobId: string, pageCount: number): Promise<void> {
  const expiresAt = Math.floor(Date.now() / 1000) + FINISHED_PAGE_RETENTION_SECONDS;
  await mapLimit(
    Array.from({ length: pageCount }, (_, page) => page),
    10,
    (page) =>
      conditionHeld(
        table.update({
          Key: keys.jobPage(orgId, jobId, page),
          UpdateExpression: "SET expiresAt = :expiresAt",
          ConditionExpression: "attribute_exists(pk)",
          ExpressionAttributeValues: { ":expiresAt": expiresAt },
        }),
      ),
  );
}

/**
 * Drops a job's running marker (it ended), and its expiry marker when it has one (or when
 * the job is gone and unknown); deleting one already gone is harmless.
 */
export async function deleteRunningJobMarker(
  orgId: string,
  jobId: string,
  job?: { deadlineAt?: unknown },
): Promise<void> {
  await Promise.all([
    table.delete({ Key: keys.runningJob(orgId, jobId) }),
    ...(!job || job.deadlineAt !== undefined ? [table.delete({ Key: keys.jobDeadline(orgId, jobId) })] : []),
  ]);
}

/**
 * Claims a stalled job for one repair: moves its `updatedAt` on, on condition that it is
 * still the value the caller read and the job still runs. Of two reconcilers that read the
 * same job, one wins; the next run leaves the job alone until it stalls again.
 */
export function claimStalledJob(orgId: string, jobId: string, seenUpdatedAt: string, now: string) {
  return updateRunningJob(orgId, jobId, {
    UpdateExpression: "SET updatedAt = :now",
    ConditionExpression: "updatedAt = :seen",
    ExpressionAttributeValues: { ":now": now, ":seen": seenUpdatedAt },
  });
}
