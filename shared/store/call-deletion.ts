/**
 * Deleting a call for a data-subject request: the call item, its transcript chunks and its
 * externalId lookup go in one transaction, which leaves a tombstone (ids and times only);
 * then its values in every job go, each deletion with a rollup delta that takes the value's
 * contribution back out of the analytics (shared/analytics/deltas.ts), so the rollups lose
 * each value exactly once however often, or by how many, the call is deleted.
 *
 * An evaluator that read the call before the deletion may record its value after it. No
 * model call outlasts an evaluator's invocation, so a pass over the tombstones once
 * LATE_VALUE_WINDOW_MS has passed (the rollup sweeper's schedule) removes such values.
 */
import { deltaItem } from "../analytics/deltas.ts";
import { classLabels, labelSetId, labelsOf, numericValue } from "../analytics/rollup.ts";
import { chunked } from "../concurrency.ts";
import { keys } from "../keys.ts";
import { logger } from "../logger.ts";
import { getMetricVersions } from "./metrics.ts";
import { baseItems, queryAll } from "./query.ts";
import { purgeRecordedValues } from "./recorded-values.ts";
import { deleteOnce, failedConditions, type TableTransactItem, table } from "./table.ts";

type Item = Record<string, unknown>;

/** Longer than any evaluator invocation (300 s) and batch collection (300 s) that read the call before. */
export const LATE_VALUE_WINDOW_MS = 15 * 60_000;
/** A tombstone answers repeated deletes (and marks the follow-up pass) for this long. */
const TOMBSTONE_DAYS = 30;
/** Values per transaction, with their reviews' copies and one delta: the same bound as recording's (record.ts). */
const VALUES_PER_TRANSACTION = 24;

const TOMBSTONE_SK = "DELETED";
/** Index partition of tombstones whose follow-up pass has not run. */
const PENDING_PASSES = "CALLDELETIONS";

/** What the rollups need of a deleted call: its label set and when it started. */
interface DeletedCall {
  orgId: string;
  callId: string;
  labelSet: string;
  at: string;
}

/**
 * Deletes the organization's call and everything stored of it. Returns false when there is
 * no such call and it was never deleted (a repeated deletion answers true again).
 */
export async function deleteCall(orgId: string, callId: string, now = new Date()): Promise<boolean> {
  const partition = await queryAll({
    KeyConditionExpression: "pk = :pk",
    ExpressionAttributeValues: { ":pk": keys.callPartition(orgId, callId) },
    // Not the transcript chunks' data: up to 3.5 MB that a deletion does not need.
    ProjectionExpression: "pk, sk, #externalId, #agentId, #environmentId, #properties, #startedAt, #labelSet, #at",
    ExpressionAttributeNames: Object.fromEntries(
      ["externalId", "agentId", "environmentId", "properties", "startedAt", "labelSet", "at"].map((name) => [
        `#${name}`,
        name,
      ]),
    ),
    ConsistentRead: true,
  });
  const tombstone = partition.find((item) => item.sk === TOMBSTONE_SK);
  const callItem = partition.find((item) => item.sk === "CALL");
  if (!callItem) {
    if (!tombstone) return false;
    // Deleted before: its values may not all be gone yet if that deletion stopped midway.
    await purgeCallValues(deletedCallOf(orgId, callId, tombstone));
    return true;
  }
  const deleted: DeletedCall = {
    orgId,
    callId,
    labelSet: labelSetId(labelsOf(callItem as never)),
    at: String(callItem.startedAt),
  };
  const chunks: TableTransactItem[] = partition
    .filter((item) => item.sk !== TOMBSTONE_SK && item.sk !== "CALL")
    .map((item) => ({ Delete: { Key: { pk: item.pk, sk: item.sk } } }));
  try {
    await table.transactWrite([
      // First: its condition's failure is the one a concurrent deletion causes.
      { Delete: { Key: keys.call(orgId, callId), ConditionExpression: "attribute_exists(pk)" } },
      ...chunks,
      ...(typeof callItem.externalId === "string"
        ? [{ Delete: { Key: keys.callExternalId(orgId, callItem.externalId) } }]
        : []),
      {
        Put: {
          Item: {
            pk: keys.callPartition(orgId, callId),
            sk: TOMBSTONE_SK,
            entity: "CallTombstone",
            labelSet: deleted.labelSet,
            at: deleted.at,
            deletedAt: now.toISOString(),
            gsi1pk: PENDING_PASSES,
            gsi1sk: `${now.toISOString()}#${orgId}#${callId}`,
            expiresAt: Math.floor(now.getTime() / 1000) + TOMBSTONE_DAYS * 86_400,
          },
        },
      },
    ]);
  } catch (error) {
    // Deleted by a concurrent request a moment ago: its values go below all the same.
    if (!failedConditions(error)?.[0]) throw error;
  }
  await purgeCallValues(deleted);
  return true;
}

const deletedCallOf = (orgId: string, callId: string, tombstone: Item): DeletedCall => ({
  orgId,
  callId,
  labelSet: String(tombstone.labelSet),
  at: String(tombstone.at),
});

/** Deletes the call's values in every job and those its agent recorded, with deltas that subtract what they added; returns how many. */
async function purgeCallValues(call: DeletedCall): Promise<number> {
  return (await purgeJobValues(call)) + (await purgeRecordedValues(call.orgId, call.callId));
}

async function purgeJobValues(call: DeletedCall): Promise<number> {
  const entries = await queryAll({
    IndexName: "gsi1",
    KeyConditionExpression: "gsi1pk = :values",
    ExpressionAttributeValues: { ":values": keys.callValues(call.orgId, call.callId) },
  });
  const values = await baseItems(entries, ["captureStatus", "value", "metricVersion"]);
  let removed = 0;
  for (const chunk of chunked(values, VALUES_PER_TRANSACTION)) removed += await removeValues(call, chunk);
  return removed;
}

/** Deletes values (of one call) and, in the same transaction, the delta that takes them out of the rollups. */
async function removeValues(call: DeletedCall, values: Item[]): Promise<number> {
  const definitions = await getMetricVersions(
    call.orgId,
    values.map((value) => ({
      metricId: keys.parseItemResult(String(value.pk), String(value.sk)).metricDefinitionId,
      version: Number(value.metricVersion),
    })),
  );
  const contribution = (value: Item) => {
    if (value.captureStatus !== "SUCCESS") return [];
    const { metricDefinitionId } = keys.parseItemResult(String(value.pk), String(value.sk));
    const definition = definitions.get(`${metricDefinitionId}@${Number(value.metricVersion)}`);
    if (!definition) return [];
    const numeric = numericValue(value.value, definition.outputType);
    const classes = classLabels(value.value, definition.outputType);
    return [
      {
        slug: definition.slug,
        histogram: definition.histogram === true,
        labelSet: call.labelSet,
        at: call.at,
        removed: true,
        ...(numeric !== undefined ? { numeric } : {}),
        ...(classes ? { classes } : {}),
      },
    ];
  };
  return deleteOnce(values, (pending) => {
    const inputs = pending.flatMap(contribution);
    const delta =
      inputs.length > 0
        ? deltaItem(
            call.orgId,
            pending.map((value) => `${String(value.pk)}|${String(value.sk)}`),
            inputs,
          )
        : undefined;
    return [
      ...(delta ? [{ Put: { Item: delta } }] : []),
      // Their reviews' copies (shared/store/reviews.ts).
      ...pending.map((value) => {
        const { jobId, metricDefinitionId } = keys.parseItemResult(String(value.pk), String(value.sk));
        return { Delete: { Key: keys.metricReview(call.orgId, metricDefinitionId, call.callId, jobId) } };
      }),
    ];
  });
}

/**
 * The follow-up pass: for each deletion older than LATE_VALUE_WINDOW_MS whose pass has not
 * run, removes the values recorded since, then marks the pass done. Returns how many values
 * it removed.
 */
export async function purgeLateCallValues(now = new Date()): Promise<number> {
  const before = new Date(now.getTime() - LATE_VALUE_WINDOW_MS).toISOString();
  const tombstones = await baseItems(
    await queryAll({
      IndexName: "gsi1",
      KeyConditionExpression: "gsi1pk = :pending AND gsi1sk < :before",
      ExpressionAttributeValues: { ":pending": PENDING_PASSES, ":before": before },
    }),
  );
  let removed = 0;
  for (const tombstone of tombstones) {
    const [orgId, callId] = String(tombstone.gsi1sk).split("#").slice(1);
    if (!orgId || !callId) continue;
    removed += await purgeCallValues(deletedCallOf(orgId, callId, tombstone));
    await table.update({
      Key: { pk: tombstone.pk, sk: tombstone.sk },
      UpdateExpression: "REMOVE gsi1pk, gsi1sk",
    });
  }
  if (removed > 0) logger.info("Removed values recorded after their call was deleted", { removed });
  return removed;
}
