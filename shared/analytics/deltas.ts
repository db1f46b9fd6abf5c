/**
 * Rollup deltas: how values reach the analytics rollups exactly once without making every
 * value's transaction update up to four rollup items.
 *
 * The transaction that records values exactly once (shared/pipeline/record.ts) also puts
 * ONE small delta item listing what those values add. A stream consumer (and, as a
 * backstop, a scheduled sweeper) merges the deltas of many transactions and applies them
 * with transactions that DELETE each delta on condition that it still exists (see
 * applyRollupDeltas). A delta is therefore applied once: a redelivered or swept delta is
 * gone, its condition fails, and it is dropped from the retry. Rollups trail the values by
 * the stream's delay and the applier's batching window (seconds): the API counts a value
 * once its delta is applied.
 */
import { createHash } from "node:crypto";
import { chunked, mapLimit } from "../concurrency.ts";
import { logger } from "../logger.ts";
import { baseItems, queryAll } from "../store/query.ts";
import { backOffAfterConflict, failedConditions, type TableTransactItem, table } from "../store/table.ts";
import { ROLLUP_DELTA_ENTITY } from "../stream-entities.ts";
import {
  labelSetId,
  type RollupIncrement,
  type RollupInput,
  rollupIncrements,
  rollupKeyPrefix,
  rollupUpdate,
} from "./rollup.ts";

/** Index partitions of pending deltas: spread so a busy pipeline does not make one hot. */
export const DELTA_SHARDS = 8;
/** The sweeper applies deltas older than this (the stream consumer normally has them long before). */
export const SWEEP_AFTER_MS = 2 * 60_000;
/** A transaction holds at most 100 actions: the deltas' deletes and their merged updates. */
const MAX_ACTIONS = 100;
const MAX_ATTEMPTS = 6;
const TRANSACTIONS_IN_FLIGHT = 8;

const deltaKey = (orgId: string, id: string) => ({ pk: `ORG#${orgId}#ROLLUPDELTA#${id}`, sk: "DELTA" });
export const pendingDeltasPartition = (shard: number) => `ROLLUPDELTAS#${shard}`;

/** A value's contribution as a delta stores it (the organization is the delta's). */
type StoredInput = Pick<RollupInput, "slug" | "histogram" | "at" | "numeric" | "classes" | "removed"> &
  ({ labelSet: string } | { labels: Record<string, string> });

/**
 * How a delta stores its values: grouped by call, so the call's label set (by id: the
 * labels themselves are in the analytics index) and time are stored once per call, and
 * defaults left out. A delta of ten values then stays under 1 KB, the unit its
 * transactional put and delete are billed by, whatever properties the calls carry.
 */
interface StoredCall {
  labelSet: string;
  at: string;
  values: { slug: string; numeric?: number; classes?: string[]; histogram?: true }[];
  /** The values were deleted: their contribution is subtracted. */
  removed?: true;
}

function storedCalls(inputs: StoredInput[]): StoredCall[] {
  const calls = new Map<string, StoredCall>();
  for (const input of inputs) {
    const { at, slug, numeric, classes, histogram, removed } = input;
    const labelSet = "labelSet" in input ? input.labelSet : labelSetId(input.labels);
    const id = `${at}|${labelSet}|${removed === true}`;
    const call = calls.get(id) ?? { labelSet, at, values: [], ...(removed ? { removed: true as const } : {}) };
    call.values.push({
      slug,
      ...(numeric !== undefined ? { numeric } : {}),
      ...(classes && classes.length > 0 ? { classes } : {}),
      ...(histogram ? { histogram: true } : {}),
    });
    calls.set(id, call);
  }
  return [...calls.values()];
}

/** Deltas written before label sets were stored by id carry the labels themselves. */
type ReadCall = Omit<StoredCall, "labelSet"> & { labelSet?: string; labels?: Record<string, string> };

const fromStoredCalls = (calls: ReadCall[]): StoredInput[] =>
  calls.flatMap(({ labelSet, labels, at, values, removed }) =>
    values.map(({ slug, numeric, classes, histogram }) => ({
      slug,
      labelSet: labelSet ?? labelSetId(labels ?? {}),
      at,
      histogram: histogram === true,
      ...(numeric !== undefined ? { numeric } : {}),
      ...(classes ? { classes } : {}),
      ...(removed ? { removed: true } : {}),
    })),
  );

/**
 * A delta as read back: `inputs` for the one the pipeline writes with its values; `increments`
 * for a merged delta, which carries the summed increments of many deltas for at most
 * `MAX_ACTIONS - 1` rollup items (see applyRollupDeltas).
 */
export interface RollupDelta {
  key: { pk: string; sk: string };
  orgId: string;
  inputs: StoredInput[];
  increments?: RollupIncrement[];
}

const MERGED_ENTITY = "MergedRollupDelta";

function pendingIndexAttributes(orgId: string, id: string, now: Date) {
  const shard = Number.parseInt(id.slice(0, 4), 16) % DELTA_SHARDS;
  return { gsi1pk: pendingDeltasPartition(shard), gsi1sk: `${now.toISOString()}#${orgId}#${id}` };
}

const hashId = (parts: string[]) => createHash("sha256").update(parts.join("\n")).digest("hex").slice(0, 32);

/**
 * The delta item for values recorded (or deleted) in one transaction. Its id is derived
 * from the values' keys, so writing the same values again cannot create a second delta; a
 * deletion's delta (inputs `removed`) has ids of its own.
 */
export function deltaItem(orgId: string, valueKeys: string[], inputs: StoredInput[], now = new Date()) {
  const removal = inputs.some((input) => input.removed) ? ["removed"] : [];
  const id = hashId([...removal, ...[...valueKeys].sort()]);
  return {
    ...deltaKey(orgId, id),
    entity: ROLLUP_DELTA_ENTITY,
    orgId,
    ...pendingIndexAttributes(orgId, id, now),
    calls: storedCalls(inputs),
  };
}

/**
 * How a merged delta stores one increment: the rollup item's key without the prefix its
 * organization implies, the item's start in epoch milliseconds (its sort key is that
 * instant in ISO form), and the adds. Half the size of whole keys: a merged delta holds up
 * to 99 of them and is billed by size twice, when it is put and when it is deleted.
 */
type StoredIncrement = [keySuffix: string, startMs: number, adds: Record<string, number>];

/** Merged delta items for `sources` (deltas of one organization), each for at most MAX_ACTIONS - 1 rollup items. */
export function mergedDeltaItems(orgId: string, sources: RollupDelta[], now = new Date()) {
  const sourceIds = sources.map((delta) => delta.key.pk).sort();
  const prefix = rollupKeyPrefix(orgId);
  return chunked(incrementsOf(sources), MAX_ACTIONS - 1).map((increments, part) => {
    // From the sources' ids: merging the same deltas again (they would be gone) cannot collide.
    const id = hashId([...sourceIds, `part ${part}`]);
    return {
      ...deltaKey(orgId, id),
      entity: MERGED_ENTITY,
      orgId,
      ...pendingIndexAttributes(orgId, id, now),
      rollups: increments.map(
        ({ key, adds }): StoredIncrement => [key.pk.slice(prefix.length), Date.parse(key.sk), Object.fromEntries(adds)],
      ),
    };
  });
}

function storedIncrements(orgId: string, item: Record<string, unknown>): RollupIncrement[] | undefined {
  if (item.rollups) {
    const prefix = rollupKeyPrefix(orgId);
    return (item.rollups as StoredIncrement[]).map(([keySuffix, startMs, adds]) => ({
      key: { pk: prefix + keySuffix, sk: new Date(startMs).toISOString() },
      adds: new Map(Object.entries(adds)),
    }));
  }
  // Merged deltas written before the compact form hold whole keys.
  const whole = item.increments as { pk: string; sk: string; adds: Record<string, number> }[] | undefined;
  return whole?.map(({ pk, sk, adds }) => ({ key: { pk, sk }, adds: new Map(Object.entries(adds)) }));
}

export function toDelta(item: Record<string, unknown>): RollupDelta {
  const orgId = String(item.orgId);
  const increments = storedIncrements(orgId, item);
  return {
    key: { pk: String(item.pk), sk: String(item.sk) },
    orgId,
    // Deltas written before values were grouped by call hold `inputs`, one per value.
    inputs: item.calls ? fromStoredCalls(item.calls as ReadCall[]) : ((item.inputs ?? []) as StoredInput[]),
    ...(increments ? { increments } : {}),
  };
}

/** The increments of several deltas, merged per rollup item (a transaction may touch an item once). */
function incrementsOf(deltas: RollupDelta[]): RollupIncrement[] {
  const merged = new Map<string, RollupIncrement>();
  const fromInputs = rollupIncrements(
    deltas.flatMap((delta) => delta.inputs.map((input) => ({ ...input, orgId: delta.orgId }))),
  );
  for (const increment of [...fromInputs, ...deltas.flatMap((delta) => delta.increments ?? [])]) {
    const id = `${increment.key.pk}|${increment.key.sk}`;
    const entry = merged.get(id);
    if (!entry) {
      merged.set(id, { key: increment.key, adds: new Map(increment.adds) });
      continue;
    }
    for (const [attribute, n] of increment.adds) entry.adds.set(attribute, (entry.adds.get(attribute) ?? 0) + n);
  }
  return [...merged.values()];
}

/**
 * Runs `transaction(pending)` until it commits, dropping the deltas it finds already gone.
 * Returns the deltas it committed for (none when every one was gone).
 */
async function untilCommitted(
  deltas: RollupDelta[],
  transaction: (pending: RollupDelta[]) => TableTransactItem[],
): Promise<RollupDelta[]> {
  let pending = deltas;
  for (let attempt = 1; pending.length > 0; attempt++) {
    if (attempt > MAX_ATTEMPTS) throw new Error(`Rollup deltas kept conflicting (${pending.length} left)`);
    try {
      await table.transactWrite(transaction(pending));
      return pending;
    } catch (error) {
      const failedAt = failedConditions(error);
      if (!failedAt) throw error;
      // The deltas' deletes come first, so a failed condition's position is the delta's: gone already.
      const gone = new Set(failedAt.flatMap((failed, position) => (failed ? [position] : [])));
      // Nothing was already applied: a conflict with a concurrent transaction; back off.
      if (gone.size === 0) await backOffAfterConflict(attempt);
      pending = pending.filter((_, position) => !gone.has(position));
    }
  }
  return [];
}

const deleteOf = (delta: RollupDelta): TableTransactItem => ({
  Delete: { Key: delta.key, ConditionExpression: "attribute_exists(pk)" },
});

/** Deletes the deltas and applies their merged increments in one transaction; returns how many it applied. */
async function applyDirectly(deltas: RollupDelta[]): Promise<number> {
  const applied = await untilCommitted(deltas, (pending) => [
    ...pending.map(deleteOf),
    ...incrementsOf(pending).map((increment) => ({ Update: rollupUpdate(increment) })),
  ]);
  return applied.length;
}

/**
 * Replaces the deltas by merged deltas in one transaction, then applies those (each in a
 * transaction of its own). Returns how many of `deltas` it merged; merged deltas it could
 * not apply stay behind for the sweeper.
 */
async function mergeAndApply(orgId: string, deltas: RollupDelta[]): Promise<number> {
  let merged: ReturnType<typeof mergedDeltaItems> = [];
  const sources = await untilCommitted(deltas, (pending) => {
    merged = mergedDeltaItems(orgId, pending);
    return [
      ...pending.map(deleteOf),
      // New items: their ids come from these sources, which exist if this commits.
      ...merged.map((Item) => ({ Put: { Item } })),
    ];
  });
  if (sources.length === 0) return 0;
  await mapLimit(merged, TRANSACTIONS_IN_FLIGHT, (item) => applyDirectly([toDelta(item)]));
  return sources.length;
}

/**
 * Groups of one organization's deltas, each small enough to merge in one transaction, with
 * the rollup items each group touches.
 */
function mergeGroups(deltas: RollupDelta[]): { deltas: RollupDelta[]; items: Set<string> }[] {
  const groups: { deltas: RollupDelta[]; items: Set<string> }[] = [];
  let current: (typeof groups)[number] | undefined;
  for (const delta of deltas) {
    const own = incrementsOf([delta]).map(({ key }) => `${key.pk}|${key.sk}`);
    const items = new Set([...(current?.items ?? []), ...own]);
    const actions = (current?.deltas.length ?? 0) + 1 + Math.ceil(items.size / (MAX_ACTIONS - 1));
    if (current && actions <= MAX_ACTIONS) {
      current.deltas.push(delta);
      current.items = items;
    } else {
      current = { deltas: [delta], items: new Set(own) };
      groups.push(current);
    }
  }
  return groups;
}

/**
 * Applies deltas exactly once, each by a transaction that deletes it on condition that it
 * still exists, so a delta delivered twice, or swept while the stream has it, is applied once.
 *
 * Values of one metric and label set in the same hour or day share rollup items, but one
 * delta already touches up to 4 items per value, and a transaction holds at most 100
 * actions: deleting deltas together with their updates could merge only two or three
 * deltas. So the deltas of a batch are first replaced, in one transaction, by merged deltas
 * that sum their increments per rollup item; each merged delta is then deleted with its
 * (at most 99) updates. A crash between the two leaves merged deltas, which the sweeper
 * applies. Deltas whose updates fit one transaction anyway are applied directly.
 *
 * Throws when a group failed (the others are applied); calling again with the same deltas
 * finishes the job without applying any twice.
 */
export async function applyRollupDeltas(deltas: RollupDelta[]): Promise<{ applied: number; alreadyApplied: number }> {
  const unique = [...new Map(deltas.map((delta) => [delta.key.pk, delta])).values()];
  const tasks: (() => Promise<number>)[] = [];
  for (const delta of unique) if (delta.increments) tasks.push(() => applyDirectly([delta]));
  const byOrg = Map.groupBy(
    unique.filter((delta) => !delta.increments),
    (delta) => delta.orgId,
  );
  for (const [orgId, orgDeltas] of byOrg) {
    for (const { deltas: group, items } of mergeGroups(orgDeltas)) {
      const direct = group.length + items.size <= MAX_ACTIONS;
      tasks.push(() => (direct ? applyDirectly(group) : mergeAndApply(orgId, group)));
    }
  }
  let applied = 0;
  let failure: unknown;
  // Groups touch mostly different rollup items, so they run side by side; every group is
  // tried before a failure is reported.
  await mapLimit(tasks, TRANSACTIONS_IN_FLIGHT, async (task) => {
    try {
      const appliedNow = await task(); // (not `applied += await …`: that reads `applied` too early)
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
  return (await baseItems(shards.flat())).map(toDelta);
}

/** Every delta not yet applied, whatever its age (tests and the benchmark wait for none). */
export async function pendingDeltaCount(): Promise<number> {
  const far = new Date(Date.now() + SWEEP_AFTER_MS + 86_400_000);
  return (await staleDeltas(far)).length;
}
