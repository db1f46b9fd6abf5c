/**
 * Rollup deltas: how values reach the analytics rollups exactly once without making every
 * value's transaction update up to four rollup items.
 *
 * The transaction that records values exactly once (shared/pipeline/record.ts) also puts
 * ONE small delta item listing what those values add. A stream consumer (and, as a
 * backstop, a scheduled sweeper) merges the deltas of many transactions and applies them
 * in transactions that DELETE each delta on condition that it still exists, together with
 * the merged ADD updates. A delta is therefore applied once: a redelivered or swept delta
 * is gone, its condition fails, and it is dropped from the retry. Rollups trail the values
 * by the stream's delay (about a second): the API counts a value once its delta is applied.
 */
import { createHash } from "node:crypto";
import { TransactionCanceledException } from "@aws-sdk/client-dynamodb";
import { TransactWriteCommand } from "@aws-sdk/lib-dynamodb";
import { dynamo } from "../aws.ts";
import { mapLimit, sleep } from "../concurrency.ts";
import { config } from "../config.ts";
import { logger } from "../logger.ts";
import { queryAll } from "../store/query.ts";
import { type RollupInput, rollupIncrements, rollupUpdate } from "./rollup.ts";

/** Index partitions of pending deltas: spread so a busy pipeline does not make one hot. */
export const DELTA_SHARDS = 8;
/** The sweeper applies deltas older than this (the stream consumer normally has them long before). */
export const SWEEP_AFTER_MS = 2 * 60_000;
/** A transaction holds at most 100 actions: the deltas' deletes and their merged updates. */
const MAX_ACTIONS = 100;
const MAX_ATTEMPTS = 6;
const CHUNKS_IN_FLIGHT = 8;

export const deltaKey = (orgId: string, id: string) => ({ pk: `ORG#${orgId}#ROLLUPDELTA#${id}`, sk: "DELTA" });
export const pendingDeltasPartition = (shard: number) => `ROLLUPDELTAS#${shard}`;

/** A value's contribution as stored in a delta (the organization is the delta's). */
type StoredInput = Omit<RollupInput, "orgId">;

export interface RollupDelta {
  key: { pk: string; sk: string };
  orgId: string;
  inputs: StoredInput[];
}

/**
 * The delta item for values recorded in one transaction. Its id is derived from the values'
 * keys, so writing the same values again cannot create a second delta.
 */
export function deltaItem(orgId: string, valueKeys: string[], inputs: RollupInput[], now = new Date()) {
  const id = createHash("sha256")
    .update([...valueKeys].sort().join("\n"))
    .digest("hex")
    .slice(0, 32);
  const shard = Number.parseInt(id.slice(0, 4), 16) % DELTA_SHARDS;
  return {
    ...deltaKey(orgId, id),
    entity: "RollupDelta",
    orgId,
    gsi1pk: pendingDeltasPartition(shard),
    gsi1sk: `${now.toISOString()}#${orgId}#${id}`,
    inputs: inputs.map(({ orgId: _org, ...input }) => input),
  };
}

export function toDelta(item: Record<string, unknown>): RollupDelta {
  return {
    key: { pk: String(item.pk), sk: String(item.sk) },
    orgId: String(item.orgId),
    inputs: (item.inputs ?? []) as StoredInput[],
  };
}

const incrementsOf = (deltas: RollupDelta[]) =>
  rollupIncrements(deltas.flatMap((delta) => delta.inputs.map((input) => ({ ...input, orgId: delta.orgId }))));

const itemIds = (deltas: RollupDelta[]) => incrementsOf(deltas).map(({ key }) => `${key.pk}|${key.sk}`);

/**
 * Deltas grouped so that each group's deletes and merged updates fit one transaction. Each
 * delta joins the group that already touches most of its rollup items (best fit), so values
 * of the same metric, label set and hours share updates: fewer writes than one update per
 * value and tier.
 */
function chunks(deltas: RollupDelta[]): RollupDelta[][] {
  const groups: { deltas: RollupDelta[]; items: Set<string> }[] = [];
  for (const delta of deltas) {
    const own = itemIds([delta]);
    let best: (typeof groups)[number] | undefined;
    let bestAdded = Number.POSITIVE_INFINITY;
    for (const group of groups) {
      const added = own.filter((id) => !group.items.has(id)).length;
      const actions = group.deltas.length + 1 + group.items.size + added;
      if (actions <= MAX_ACTIONS && added < bestAdded) {
        best = group;
        bestAdded = added;
      }
    }
    if (best) {
      best.deltas.push(delta);
      for (const id of own) best.items.add(id);
    } else groups.push({ deltas: [delta], items: new Set(own) });
  }
  return groups.map((group) => group.deltas);
}

/** Applies one chunk; returns how many of its deltas this call applied (the rest were applied before). */
async function applyChunk(chunk: RollupDelta[]): Promise<number> {
  const table = config().tableName;
  let pending = chunk;
  for (let attempt = 1; pending.length > 0; attempt++) {
    if (attempt > MAX_ATTEMPTS) throw new Error(`Rollup deltas kept conflicting (${pending.length} left)`);
    try {
      await dynamo().send(
        new TransactWriteCommand({
          TransactItems: [
            ...pending.map((delta) => ({
              Delete: { TableName: table, Key: delta.key, ConditionExpression: "attribute_exists(pk)" },
            })),
            ...incrementsOf(pending).map((increment) => ({ Update: rollupUpdate(table, increment) })),
          ],
        }),
      );
      return pending.length;
    } catch (error) {
      if (!(error instanceof TransactionCanceledException)) throw error;
      const reasons = error.CancellationReasons ?? [];
      const applied = (position: number) => reasons[position]?.Code === "ConditionalCheckFailed";
      const before = pending.length;
      pending = pending.filter((_, position) => !applied(position));
      // Nothing was already applied: a conflict with a concurrent transaction; back off.
      if (pending.length === before) await sleep(Math.min(1000, 20 * 2 ** attempt) * (0.5 + Math.random()));
    }
  }
  return 0;
}

/**
 * Applies deltas exactly once. Throws when a chunk failed (the others are applied); calling
 * again with the same deltas finishes the job without applying any twice.
 */
export async function applyRollupDeltas(deltas: RollupDelta[]): Promise<{ applied: number; alreadyApplied: number }> {
  const unique = [...new Map(deltas.map((delta) => [delta.key.pk, delta])).values()];
  let applied = 0;
  let failure: unknown;
  // Chunks touch mostly different rollup items (best fit groups the overlapping deltas), so
  // they run side by side; every chunk is tried before a failure is reported.
  await mapLimit(chunks(unique), CHUNKS_IN_FLIGHT, async (chunk) => {
    try {
      const appliedNow = await applyChunk(chunk); // (not `applied += await …`: that reads `applied` too early)
      applied += appliedNow;
    } catch (error) {
      failure ??= error;
    }
  });
  if (failure) throw failure;
  if (applied < unique.length) {
    logger.info("Rollup deltas already applied were skipped", { skipped: unique.length - applied });
  }
  return { applied, alreadyApplied: unique.length - applied };
}

/** Deltas the stream consumer has not applied after `SWEEP_AFTER_MS` (it failed, or the stream expired). */
export async function staleDeltas(now = new Date()): Promise<RollupDelta[]> {
  const before = new Date(now.getTime() - SWEEP_AFTER_MS).toISOString();
  const shards = await Promise.all(
    Array.from({ length: DELTA_SHARDS }, (_, shard) =>
      queryAll({
        IndexName: "gsi1",
        KeyConditionExpression: "gsi1pk = :shard AND gsi1sk < :before",
        ExpressionAttributeValues: { ":shard": pendingDeltasPartition(shard), ":before": before },
      }),
    ),
  );
  return shards.flat().map(toDelta);
}

/** Every delta not yet applied, whatever its age (tests and the benchmark wait for none). */
export async function pendingDeltaCount(): Promise<number> {
  const far = new Date(Date.now() + SWEEP_AFTER_MS + 86_400_000);
  return (await staleDeltas(far)).length;
}
