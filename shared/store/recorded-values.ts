/**
 * Values the agent records itself (VoiceRun's custom metrics). Each is stored under its call
 * (`keys.recordedValues`, sort key its client id) in one transaction with the rollup delta
 * that adds it to the analytics: a value sent again fails its condition and adds nothing.
 * A deleted call's values leave the analytics the same way (`purgeRecordedValues`).
 */
import { deltaItem } from "../analytics/deltas.ts";
import { indexedMetrics, indexRollups } from "../analytics/index-store.ts";
import { boundedLabelValue, labelSetId, labelsOf, type RollupInput } from "../analytics/rollup.ts";
import { chunked, mapLimit, unique } from "../concurrency.ts";
import { invalid } from "../errors.ts";
import { keys } from "../keys.ts";
import type { OutputType } from "../schemas/metric.ts";
import type { RecordedValueInput } from "../schemas/recorded.ts";
import { batchGet } from "./batch-get.ts";
import { callIdByExternalId } from "./calls.ts";
import { getMetric } from "./metrics.ts";
import { queryAll } from "./query.ts";
import { retentionExpiresAt } from "./retention.ts";
import { backOffAfterConflict, deleteOnce, failedConditions, table } from "./table.ts";

type Item = Record<string, unknown>;
const MAX_ATTEMPTS = 6;
/** Values per deletion transaction, with their delta. */
const VALUES_PER_TRANSACTION = 24;

/** Numbers are counters (summed); booleans count as 1 / 0, with a pass rate. */
const outputTypeOf = (value: number | boolean): OutputType => (typeof value === "boolean" ? "BOOLEAN" : "COUNT");
const numericOf = (value: number | boolean) => (typeof value === "boolean" ? Number(value) : value);

/** The stored calls the values name (by id or externalId); 400 naming those that do not exist. */
async function callsOf(orgId: string, inputs: RecordedValueInput[]) {
  const externalIds = unique(inputs.flatMap((input) => (input.externalId ? [input.externalId] : [])));
  const byExternalId = new Map(
    await mapLimit(
      externalIds,
      8,
      async (externalId) => [externalId, await callIdByExternalId(orgId, externalId)] as const,
    ),
  );
  const callIdOf = (input: RecordedValueInput) => input.callId ?? byExternalId.get(input.externalId ?? "");
  const ids = unique(inputs.flatMap((input) => callIdOf(input) ?? []));
  const items = await batchGet(
    ids.map((id) => keys.call(orgId, id)),
    { projection: ["id", "agentId", "environmentId", "properties", "startedAt"] },
  );
  const calls = new Map(items.map((item) => [String(item.id), item]));
  const unknownCallIds = unique(
    inputs.flatMap((input) => (input.callId && !calls.has(input.callId) ? [input.callId] : [])),
  );
  const unknownExternalIds = externalIds.filter((externalId) => !calls.has(byExternalId.get(externalId) ?? ""));
  if (unknownCallIds.length > 0 || unknownExternalIds.length > 0) {
    throw invalid(
      `Unknown calls: ${[...unknownCallIds, ...unknownExternalIds.map((id) => `externalId ${id}`)].slice(0, 20).join(", ")}; nothing was stored`,
      { unknownCallIds, unknownExternalIds },
    );
  }
  return { callIdOf: (input: RecordedValueInput) => callIdOf(input) as string, calls };
}

/** 400 for names that are definitions' slugs, or whose values change type (a counter is never a flag). */
export async function assertRecordable(orgId: string, inputs: Pick<RecordedValueInput, "name" | "value">[]) {
  const names = unique(inputs.map((input) => input.name));
  const [definitions, indexed] = await Promise.all([
    mapLimit(names, 8, (name) => getMetric(orgId, name)),
    indexedMetrics(orgId),
  ]);
  const taken = names.filter((_, index) => definitions[index]);
  if (taken.length > 0) {
    throw invalid(`${taken.join(", ")}: the slug of a metric definition; recorded values need names of their own`, {
      names: taken,
    });
  }
  const types = new Map(indexed.map((metric) => [metric.slug, metric.outputType]));
  const mixed = names.filter((name) => {
    const seen = new Set(inputs.filter((input) => input.name === name).map((input) => outputTypeOf(input.value)));
    const before = types.get(name);
    return seen.size > 1 || (before !== undefined && !seen.has(before));
  });
  if (mixed.length > 0) {
    throw invalid(`${mixed.join(", ")}: values must keep one type per name (numbers or booleans)`, { names: mixed });
  }
}

/** `checked`: the caller ran assertRecordable on these values already (POST /v1/call, before storing the call). */
export async function recordValues(
  orgId: string,
  inputs: RecordedValueInput[],
  { checked = false }: { checked?: boolean } = {},
): Promise<{ recorded: number; duplicates: number }> {
  const [{ callIdOf, calls }] = await Promise.all([
    callsOf(orgId, inputs),
    checked ? undefined : assertRecordable(orgId, inputs),
  ]);
  const expiresAt = await retentionExpiresAt(orgId);
  const rollups = inputs.map((input): RollupInput => {
    const call = calls.get(callIdOf(input)) as Item;
    const own = Object.fromEntries(
      Object.entries(input.labels ?? {}).map(([name, value]) => [name, boundedLabelValue(value)]),
    );
    return {
      orgId,
      slug: input.name,
      outputType: outputTypeOf(input.value),
      histogram: false,
      // The call's labels win over a value's own of the same name.
      labels: { ...own, ...labelsOf(call as never) },
      at: String(call.startedAt),
      numeric: numericOf(input.value),
    };
  });
  // Names and label sets first (idempotent puts), so stored values are always findable.
  await indexRollups(rollups);
  const outcomes = await mapLimit(
    inputs.map((input, index) => ({ input, rollup: rollups[index] as RollupInput })),
    8,
    ({ input, rollup }) => storeValue(orgId, callIdOf(input), input, rollup, expiresAt),
  );
  const recorded = outcomes.filter(Boolean).length;
  return { recorded, duplicates: inputs.length - recorded };
}

/** Stores one value with its delta; false when its id was stored for the call before. */
async function storeValue(
  orgId: string,
  callId: string,
  input: RecordedValueInput,
  rollup: RollupInput,
  expiresAt: number | undefined,
): Promise<boolean> {
  const key = { pk: keys.recordedValues(orgId, callId), sk: `VALUE#${input.id}` };
  const item = {
    ...key,
    entity: "RecordedValue",
    name: input.name,
    value: input.value,
    ...(input.labels ? { labels: input.labels } : {}),
    // What its removal subtracts: the rollups' label set and instant.
    labelSet: labelSetId(rollup.labels),
    at: rollup.at,
    recordedAt: new Date().toISOString(),
    ...(expiresAt === undefined ? {} : { expiresAt }),
  };
  const delta = deltaItem(orgId, [`${key.pk}|${key.sk}`], [rollup]);
  for (let attempt = 1; ; attempt++) {
    try {
      await table.transactWrite([
        { Put: { Item: item, ConditionExpression: "attribute_not_exists(pk)" } },
        { Put: { Item: delta } },
      ]);
      return true;
    } catch (error) {
      const failedAt = failedConditions(error);
      if (!failedAt) throw error;
      if (failedAt[0]) return false;
      // A conflict with a concurrent transaction (the same value sent twice at once).
      if (attempt >= MAX_ATTEMPTS) throw error;
      await backOffAfterConflict(attempt);
    }
  }
}

/** A call's recorded values: each name's values summed (counters; booleans count true). */
export async function recordedValueSums(orgId: string, callId: string): Promise<Map<string, number>> {
  const items = await queryAll({
    KeyConditionExpression: "pk = :pk",
    ExpressionAttributeValues: { ":pk": keys.recordedValues(orgId, callId) },
  });
  const sums = new Map<string, number>();
  for (const item of items) {
    sums.set(String(item.name), (sums.get(String(item.name)) ?? 0) + numericOf(item.value as number | boolean));
  }
  return sums;
}

/** Deletes a call's recorded values, each transaction with the delta that takes them out of the rollups. */
export async function purgeRecordedValues(orgId: string, callId: string): Promise<number> {
  const items = await queryAll({
    KeyConditionExpression: "pk = :pk",
    ExpressionAttributeValues: { ":pk": keys.recordedValues(orgId, callId) },
    ConsistentRead: true,
  });
  let removed = 0;
  for (const chunk of chunked(items, VALUES_PER_TRANSACTION)) removed += await removeChunk(orgId, chunk);
  return removed;
}

/** Recorded values (of one call) and, in the same transaction, the delta that takes them out of the rollups. */
const removeChunk = (orgId: string, values: Item[]) =>
  deleteOnce(values, (pending) => [
    {
      Put: {
        Item: deltaItem(
          orgId,
          pending.map((value) => `${String(value.pk)}|${String(value.sk)}`),
          pending.map((value) => ({
            slug: String(value.name),
            histogram: false,
            labelSet: String(value.labelSet),
            at: String(value.at),
            numeric: numericOf(value.value as number | boolean),
            removed: true,
          })),
        ),
      },
    },
  ]);
