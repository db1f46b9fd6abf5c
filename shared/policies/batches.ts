/**
 * Policy-triggered work, batched. New calls that match a policy are added to that policy's
 * batch for the current window (a string set: adding a call twice changes nothing, so
 * stream redelivery is harmless); a scheduled flusher turns every due batch into one job
 * (`triggeredBy: METRIC_POLICY`) whose id is derived from the batch, so a flush that is
 * retried finds the job it already created instead of making a second one.
 */
import { createHash } from "node:crypto";
import { ConditionalCheckFailedException } from "@aws-sdk/client-dynamodb";
import { QueryCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { dynamo } from "../aws.ts";
import { config } from "../config.ts";
import { ApiError } from "../http/errors.ts";
import { keys } from "../keys.ts";
import { logger } from "../logger.ts";
import { createCollectionJob, redispatchPendingJob } from "../pipeline/create-job.ts";
import { getPolicy } from "../store/policies.ts";
import { queryItems } from "../store/query.ts";

type Item = Record<string, unknown>;

export function windowStart(now: Date, windowSeconds: number): string {
  const ms = windowSeconds * 1000;
  return new Date(Math.floor(now.getTime() / ms) * ms).toISOString();
}

/** DynamoDB refuses an update that would grow the item past 400 KB (about 10,000 call ids). */
const isItemTooLarge = (error: unknown) =>
  error instanceof Error &&
  error.name === "ValidationException" &&
  /item size .*exceeded|exceeded the maximum allowed size/i.test(error.message);
const MAX_SHARDS = 1000;

/**
 * Adds matched calls to the policy's open batch for `now`'s window. A batch item that is
 * full (a very large burst) spills into the window's next shard, flushed as its own job.
 */
export async function addToPolicyBatch(
  orgId: string,
  policyId: string,
  callIds: string[],
  now = new Date(),
  shard = 0,
): Promise<void> {
  const { policyWindowSeconds } = config();
  const start = windowStart(now, policyWindowSeconds);
  const due = new Date(Date.parse(start) + policyWindowSeconds * 1000).toISOString();
  try {
    await dynamo().send(
      new UpdateCommand({
        TableName: config().tableName,
        Key: keys.policyBatch(orgId, policyId, start, shard),
        UpdateExpression:
          "ADD callIds :calls SET entity = :entity, orgId = :org, policyId = :policy, gsi1pk = if_not_exists(gsi1pk, :open), gsi1sk = if_not_exists(gsi1sk, :due)",
        // A window already flushed takes no more calls: they go to the next one.
        ConditionExpression: "attribute_not_exists(flushedJobId)",
        ExpressionAttributeValues: {
          ":calls": new Set(callIds),
          ":entity": "PolicyBatch",
          ":org": orgId,
          ":policy": policyId,
          ":open": keys.openPolicyBatches,
          ":due": `${due}#${orgId}#${policyId}`,
        },
      }),
    );
  } catch (error) {
    if (isItemTooLarge(error) && shard < MAX_SHARDS) {
      await addToPolicyBatch(orgId, policyId, callIds, now, shard + 1);
      return;
    }
    if (!(error instanceof ConditionalCheckFailedException)) throw error;
    await addToPolicyBatch(orgId, policyId, callIds, new Date(Date.parse(start) + policyWindowSeconds * 1000));
  }
}

/** A UUID-shaped id derived from the batch key: the same batch always names the same job. */
export function jobIdForBatch(pk: string, sk: string): string {
  const hex = createHash("sha256").update(`${pk}|${sk}`).digest("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

async function markFlushed(batch: Item, jobId: string, error?: string) {
  await dynamo().send(
    new UpdateCommand({
      TableName: config().tableName,
      Key: { pk: batch.pk, sk: batch.sk },
      UpdateExpression: "SET flushedJobId = :job, flushedAt = :now REMOVE gsi1pk, gsi1sk",
      ExpressionAttributeValues: { ":job": error ? `none: ${error}` : jobId, ":now": new Date().toISOString() },
    }),
  );
}

async function flushBatch(batch: Item): Promise<void> {
  const orgId = String(batch.orgId);
  const policyId = String(batch.policyId);
  const callIds = [...((batch.callIds as Set<string> | undefined) ?? [])].sort();
  const jobId = jobIdForBatch(String(batch.pk), String(batch.sk));
  const policy = await getPolicy(orgId, policyId);
  if (!policy || callIds.length === 0) {
    await markFlushed(batch, jobId, policy ? "no calls" : "policy deleted");
    return;
  }
  try {
    await createCollectionJob(
      orgId,
      { callIds, metrics: policy.metrics },
      // Not re-validated here: a webhook host that stopped resolving must not drop the calls'
      // evaluation; the delivery checks the URL again (and fails the delivery, not the job).
      { triggeredBy: "METRIC_POLICY", policyIds: [policyId], jobId, webhookUrl: policy.webhookUrl },
    );
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) {
      // Created by an earlier flush that stopped before marking the batch: make sure it runs.
      await redispatchPendingJob(orgId, jobId);
    } else if (error instanceof ApiError && error.status === 400) {
      // E.g. a metric of the policy was deleted: nothing to run; say why on the batch.
      logger.warn("Policy batch not runnable", { policyId, error: error.message });
      await markFlushed(batch, jobId, error.message);
      return;
    } else {
      throw error;
    }
  }
  await markFlushed(batch, jobId);
  logger.info("Policy batch flushed", { policyId, jobId, calls: callIds.length });
}

/** Flushes every batch whose window has ended. */
export async function flushDuePolicyBatches(now = new Date()): Promise<number> {
  let flushed = 0;
  const due = queryItems({
    IndexName: "gsi1",
    KeyConditionExpression: "gsi1pk = :open AND gsi1sk < :now",
    ExpressionAttributeValues: { ":open": keys.openPolicyBatches, ":now": now.toISOString() },
  });
  for await (const key of due) {
    // The index holds keys only for projection ALL tables too; read the batch itself consistently.
    const { Items } = await dynamo().send(
      new QueryCommand({
        TableName: config().tableName,
        KeyConditionExpression: "pk = :pk AND sk = :sk",
        ExpressionAttributeValues: { ":pk": key.pk, ":sk": key.sk },
        ConsistentRead: true,
      }),
    );
    const batch = Items?.[0];
    if (!batch || batch.flushedJobId) continue;
    await flushBatch(batch);
    flushed++;
  }
  return flushed;
}
