/**
 * Policy-triggered work, batched. A new call that matches a policy is claimed for one batch
 * (a window, split into shards of bounded size) by a marker item per policy × call, and
 * added to that batch's set of call ids; a scheduled flusher turns every due batch into jobs.
 *
 * Each call reaches exactly one job, whatever is replayed or interleaved:
 * - a replayed stream record finds the call's marker and adds the call to the batch it names
 *   (a set: no change), never to a later window's batch;
 * - the flusher first closes a batch (adds require an open one), so the set it then reads is
 *   final; a call whose add meets a closed batch moves on to a later window;
 * - a marker leaves a batch only while the call is not in that batch's set, and a flush takes
 *   only the calls whose marker names its batch;
 * - job ids derive from the batch, so a flush run again finds the jobs it created.
 */
import { chunked, mapLimit } from "../concurrency.ts";
import { config } from "../config.ts";
import { isDomainError } from "../errors.ts";
import { keys } from "../keys.ts";
import { logger } from "../logger.ts";
import { createCollectionJob, redispatchPendingJob } from "../pipeline/create-job.ts";
import { derivedJobId } from "../pipeline/job-ids.ts";
import { batchGet } from "../store/batch-get.ts";
import { getPolicy } from "../store/policies.ts";
import { queryItems } from "../store/query.ts";
import { conditionHeld, failedConditions, ifConditionHeld, table } from "../store/table.ts";

type Item = Record<string, unknown>;

const CALLS_PER_ADD = 100;
const MAX_SHARDS = 1000;
const WRITES_IN_FLIGHT = 16;
/** Stream records are replayed within a day; the marker outlives that comfortably. */
const MATCH_TTL_SECONDS = 7 * 86_400;
/** Moves of one add (full shard, closed window) before giving up; the stream retries the record. */
const MAX_MOVES = 50;

/** One batch: a window and a shard of it. */
interface BatchRef {
  window: string;
  shard: number;
}
interface Placement {
  callId: string;
  batch: BatchRef;
}

const sameBatch = (a: BatchRef, b: BatchRef) => a.window === b.window && a.shard === b.shard;
const batchKey = (orgId: string, policyId: string, batch: BatchRef) =>
  keys.policyBatch(orgId, policyId, batch.window, batch.shard);
const later = (a: string, b: string) => (a > b ? a : b);

function windowStart(now: Date, windowSeconds: number): string {
  const ms = windowSeconds * 1000;
  return new Date(Math.floor(now.getTime() / ms) * ms).toISOString();
}

const windowAfter = (window: string) =>
  new Date(Date.parse(window) + config().policyWindowSeconds * 1000).toISOString();

/** The highest shard of the window written so far (0 when none is) and how many more calls it takes. */
async function openShard(orgId: string, policyId: string, window: string): Promise<{ shard: number; room: number }> {
  const prefix = keys.policyBatch(orgId, policyId, window).sk;
  const { Items = [] } = await table.query({
    KeyConditionExpression: "pk = :pk AND begins_with(sk, :prefix)",
    ExpressionAttributeValues: { ":pk": keys.policyBatch(orgId, policyId, window).pk, ":prefix": prefix },
    ProjectionExpression: "sk, callCount, closedAt",
    ScanIndexForward: false,
    Limit: 1,
    ConsistentRead: true,
  });
  const last = Items[0];
  if (!last) return { shard: 0, room: config().policyBatchItemCalls };
  const suffix = String(last.sk).slice(prefix.length);
  const shard = suffix ? Number(suffix.slice(1)) : 0;
  return { shard, room: last.closedAt ? 0 : Math.max(0, config().policyBatchItemCalls - Number(last.callCount ?? 0)) };
}

async function markedBatch(orgId: string, policyId: string, callId: string): Promise<BatchRef | undefined> {
  const marker = await table.get(keys.policyCallMatch(orgId, policyId, callId), { ConsistentRead: true });
  return marker ? { window: String(marker.batchWindow), shard: Number(marker.batchShard) } : undefined;
}

/** Claims `target` for the call, unless an earlier delivery of its record claimed a batch already. */
async function claimBatch(orgId: string, policyId: string, callId: string, target: BatchRef): Promise<BatchRef> {
  const claimed = await conditionHeld(
    table.put({
      Item: {
        ...keys.policyCallMatch(orgId, policyId, callId),
        entity: "PolicyCallMatch",
        orgId,
        policyId,
        callId,
        batchWindow: target.window,
        batchShard: target.shard,
        expiresAt: Math.floor(Date.now() / 1000) + MATCH_TTL_SECONDS,
      },
      ConditionExpression: "attribute_not_exists(pk)",
    }),
  );
  if (claimed) return target;
  return (await markedBatch(orgId, policyId, callId)) ?? target;
}

/**
 * Moves the call's marker from `from` to `to`, unless the call is in `from`'s set: then it
 * stays there and is flushed with it (undefined). When another writer moved the marker
 * first, answers the batch it names now.
 */
async function moveMarker(
  orgId: string,
  policyId: string,
  callId: string,
  from: BatchRef,
  to: BatchRef,
): Promise<BatchRef | undefined> {
  try {
    await table.transactWrite([
      {
        ConditionCheck: {
          Key: batchKey(orgId, policyId, from),
          ConditionExpression: "attribute_not_exists(callIds) OR NOT contains(callIds, :call)",
          ExpressionAttributeValues: { ":call": callId },
        },
      },
      {
        Update: {
          Key: keys.policyCallMatch(orgId, policyId, callId),
          UpdateExpression: "SET batchWindow = :toWindow, batchShard = :toShard",
          ConditionExpression: "batchWindow = :fromWindow AND batchShard = :fromShard",
          ExpressionAttributeValues: {
            ":toWindow": to.window,
            ":toShard": to.shard,
            ":fromWindow": from.window,
            ":fromShard": from.shard,
          },
        },
      },
    ]);
    return to;
  } catch (error) {
    const [inSet, markerMoved] = failedConditions(error) ?? [];
    if (markerMoved) return (await markedBatch(orgId, policyId, callId)) ?? to;
    if (inSet) return undefined;
    // A concurrent transaction on the same items: the stream retries the record.
    throw error;
  }
}

type AddOutcome = "added" | "closed" | "full";

async function addToBatchItem(
  orgId: string,
  policyId: string,
  batch: BatchRef,
  callIds: string[],
): Promise<AddOutcome> {
  const key = batchKey(orgId, policyId, batch);
  const added = await conditionHeld(
    table.update({
      Key: key,
      UpdateExpression:
        "ADD callIds :calls, callCount :count SET entity = :entity, orgId = :org, policyId = :policy, batchWindow = :window, batchShard = :shard, gsi1pk = if_not_exists(gsi1pk, :open), gsi1sk = if_not_exists(gsi1sk, :due)",
      // Counted per add (replays included), so the set can never outgrow the item limit.
      ConditionExpression: "attribute_not_exists(closedAt) AND (attribute_not_exists(callCount) OR callCount <= :room)",
      ExpressionAttributeValues: {
        ":calls": new Set(callIds),
        ":count": callIds.length,
        ":room": config().policyBatchItemCalls - callIds.length,
        ":entity": "PolicyBatch",
        ":org": orgId,
        ":policy": policyId,
        ":window": batch.window,
        ":shard": batch.shard,
        ":open": keys.openPolicyBatches,
        ":due": `${windowAfter(batch.window)}#${orgId}#${policyId}`,
      },
    }),
  );
  if (added) return "added";
  const current = await table.get(key, { ConsistentRead: true });
  return current?.closedAt ? "closed" : "full";
}

/** Adds the calls to the batch their markers name, moving on when it is full or closed. */
async function place(orgId: string, policyId: string, placements: Placement[], now: Date, moves = 0) {
  if (moves > MAX_MOVES) throw new Error(`Policy ${policyId}: calls moved ${MAX_MOVES} times without finding a batch`);
  const byBatch = Map.groupBy(placements, (p) => `${p.batch.window}#${p.batch.shard}`);
  for (const group of byBatch.values()) {
    const batch = (group[0] as Placement).batch;
    for (const callIds of chunked(
      group.map((p) => p.callId),
      Math.min(CALLS_PER_ADD, config().policyBatchItemCalls),
    )) {
      const outcome = await addToBatchItem(orgId, policyId, batch, callIds);
      if (outcome === "added") continue;
      const next: BatchRef =
        outcome === "full"
          ? { window: batch.window, shard: batch.shard + 1 }
          : { window: later(windowAfter(batch.window), windowStart(now, config().policyWindowSeconds)), shard: 0 };
      if (next.shard >= MAX_SHARDS) throw new Error(`Policy ${policyId}: window ${batch.window} is full`);
      const moved = await mapLimit(callIds, WRITES_IN_FLIGHT, async (callId) => ({
        callId,
        batch: await moveMarker(orgId, policyId, callId, batch, next),
      }));
      const toPlace = moved.filter((p): p is Placement => p.batch !== undefined);
      await place(orgId, policyId, toPlace, now, moves + 1);
    }
  }
}

/** Adds calls a policy matched to its batches: `now`'s window for new calls, their claimed batch for replays. */
export async function addToPolicyBatch(
  orgId: string,
  policyId: string,
  callIds: string[],
  now = new Date(),
): Promise<void> {
  const window = windowStart(now, config().policyWindowSeconds);
  const { shard, room } = await openShard(orgId, policyId, window);
  // What the last shard has no room for fills the next shards: a burst rarely has to move.
  const targetOf = (index: number): BatchRef => ({
    window,
    shard: index < room ? shard : shard + 1 + Math.floor((index - room) / config().policyBatchItemCalls),
  });
  const unique = [...new Set(callIds)];
  const claimed = await mapLimit([...unique.keys()], WRITES_IN_FLIGHT, async (index) => ({
    callId: unique[index] as string,
    batch: await claimBatch(orgId, policyId, unique[index] as string, targetOf(index)),
  }));
  await place(orgId, policyId, claimed, now);
}

/** A UUID-shaped id derived from the batch key (and which of its jobs): the same batch names the same jobs. */
function jobIdForBatch(pk: string, sk: string, index = 0): string {
  return derivedJobId(index === 0 ? `${pk}|${sk}` : `${pk}|${sk}|${index}`);
}

/**
 * Closes the batch to adds and fixes how many calls each of its jobs takes (a re-run splits
 * the same way). Answers the batch as closed, whose set is then final.
 */
function closeBatch(key: Item, callsPerJob: number): Promise<Item | undefined> {
  return ifConditionHeld(
    table.update({
      Key: { pk: key.pk, sk: key.sk },
      UpdateExpression:
        "SET closedAt = if_not_exists(closedAt, :now), callsPerJob = if_not_exists(callsPerJob, :perJob)",
      ConditionExpression: "attribute_exists(pk)",
      ExpressionAttributeValues: { ":now": new Date().toISOString(), ":perJob": callsPerJob },
      ReturnValues: "ALL_NEW",
    }),
  );
}

/** The calls of a closed batch that belong to it: in its set, and named by their marker. */
async function callsOfBatch(batch: Item): Promise<string[]> {
  const orgId = String(batch.orgId);
  const policyId = String(batch.policyId);
  const inSet = [...((batch.callIds as Set<string> | undefined) ?? [])].sort();
  const own: BatchRef = { window: String(batch.batchWindow), shard: Number(batch.batchShard) };
  const markers = await batchGet(
    inSet.map((callId) => keys.policyCallMatch(orgId, policyId, callId)),
    { projection: ["callId", "batchWindow", "batchShard"], consistent: true },
  );
  const elsewhere = new Set(
    markers
      .filter((marker) => !sameBatch({ window: String(marker.batchWindow), shard: Number(marker.batchShard) }, own))
      .map((marker) => String(marker.callId)),
  );
  return inSet.filter((callId) => !elsewhere.has(callId));
}

async function markFlushed(batch: Item, jobIds: string[], problem?: string) {
  await table.update({
    Key: { pk: batch.pk, sk: batch.sk },
    UpdateExpression: `SET flushedJobId = :job, flushedJobIds = :jobs, flushedAt = :now${problem ? ", flushProblem = :problem" : ""} REMOVE gsi1pk, gsi1sk`,
    ExpressionAttributeValues: {
      ":job": jobIds[0] ?? `none: ${problem}`,
      ":jobs": jobIds,
      ":now": new Date().toISOString(),
      ...(problem ? { ":problem": problem } : {}),
    },
  });
}

async function flushBatch(key: Item): Promise<boolean> {
  const orgId = String(key.orgId);
  const policyId = String(key.policyId);
  const policy = await getPolicy(orgId, policyId);
  // A batch larger than one job may be is split into several jobs, never dropped.
  const callsPerJob = Math.max(1, Math.floor(config().maxJobItems / Math.max(1, policy?.metrics.length ?? 1)));
  const batch = await closeBatch(key, callsPerJob);
  if (!batch || batch.flushedJobId) return false;
  const callIds = await callsOfBatch(batch);
  if (!policy || callIds.length === 0) {
    await markFlushed(batch, [], policy ? "no calls" : "policy deleted");
    return true;
  }
  const jobIds: string[] = [];
  let problem: string | undefined;
  for (const [index, calls] of chunked(callIds, Number(batch.callsPerJob)).entries()) {
    const jobId = jobIdForBatch(String(batch.pk), String(batch.sk), index);
    try {
      await createCollectionJob(
        orgId,
        { callIds: calls, metrics: policy.metrics, judgeMode: policy.judgeMode, llmMode: policy.llmMode },
        // Not re-validated here: a webhook host that stopped resolving must not drop the calls'
        // evaluation; the delivery checks the URL again (and fails the delivery, not the job).
        { triggeredBy: "METRIC_POLICY", policyIds: [policyId], jobId, webhookUrl: policy.webhookUrl },
      );
      jobIds.push(jobId);
    } catch (error) {
      if (isDomainError(error, "conflict")) {
        // Created by an earlier flush that stopped before marking the batch: make sure it runs.
        await redispatchPendingJob(orgId, jobId);
        jobIds.push(jobId);
      } else if (isDomainError(error, "invalid")) {
        // E.g. a metric of the policy was deleted: nothing to run; say why on the batch.
        logger.warn("Policy batch not runnable", { policyId, error: error.message });
        problem ??= error.message;
      } else {
        throw error;
      }
    }
  }
  await markFlushed(batch, jobIds, problem);
  logger.info("Policy batch flushed", { policyId, jobIds, calls: callIds.length });
  return true;
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
    const [, orgId, policyId] = /^ORG#(.+)#POLICY#(.+)$/.exec(String(key.pk)) ?? [];
    if (!orgId || !policyId) continue;
    if (await flushBatch({ pk: key.pk, sk: key.sk, orgId, policyId })) flushed++;
  }
  return flushed;
}
