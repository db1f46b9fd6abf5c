/**
 * Exactly-once counting (docs/pipeline.md, step 4): an item's value and the job counter increment are
 * written in one transaction, each value conditioned on not existing yet, with one rollup
 * delta for the analytics (shared/analytics/deltas.ts). Items of one job
 * share a transaction and a single counter update. A redelivered item fails its condition
 * and is dropped from the retry, so it changes nothing.
 */
import { deltaItem } from "../analytics/deltas.ts";
import { indexRollups } from "../analytics/index-store.ts";
import { classLabels, labelsOf, numericValue, type RollupInput, TIERS } from "../analytics/rollup.ts";
import { keys } from "../keys.ts";
import { logger } from "../logger.ts";
import type { Call } from "../schemas/call.ts";
import type { MetricValue, WorkItem } from "../schemas/job.ts";
import type { MetricDefinition } from "../schemas/metric.ts";
import { batchGet } from "../store/batch-get.ts";
import { replacedByError, storableValue } from "../store/item-budget.ts";
import { jobStillRuns, jobUsageUpdate } from "../store/jobs.ts";
import { retentionExpiresAt } from "../store/retention.ts";
import { spendUpdate } from "../store/spend.ts";
import { backOffAfterConflict, failedConditions, type TableTransactItem, table } from "../store/table.ts";
import type { EvaluationOutcome } from "./evaluators.ts";

export interface ItemResult {
  /** The SQS message that carried the item. */
  messageId: string;
  item: WorkItem;
  value: MetricValue;
  /** What the analytics rollups add for this value (SUCCESS values only). */
  rollup?: RollupInput;
}

export type RecordOutcome = "recorded" | "duplicate" | "job-not-running" | "not-recorded";

/**
 * Values per transaction (with the counter update and one rollup delta). The bound is the
 * delta's: the rollup applier deletes it in one transaction with its updates, at most one
 * per value and resolution, and a transaction holds at most 100 actions: 1 + 24 × 4 = 97.
 */
const VALUES_PER_TRANSACTION = Math.floor((100 - 1) / TIERS.length);
const MAX_ATTEMPTS = 6;
const COUNTED_AS_COMPLETED = new Set(["SUCCESS", "NOT_APPLICABLE", "DATA_MISSING"]);

const itemKey = ({ orgId, jobId, callId, metricId }: WorkItem) => `${orgId}|${jobId}|${callId}|${metricId}`;

/**
 * The stored value. The organization, job, call and metric ids are in its keys and are not
 * repeated: most values then stay under 1 KB, the unit a transactional write is billed by
 * (2 write units per KB).
 */
function valueItem({ item, value }: ItemResult, expiresAt: number | undefined) {
  const { jobId: _job, callId: _call, metricDefinitionId: _metric, ...stored } = value;
  return {
    ...keys.itemResult(item.orgId, item.jobId, item.callId, item.metricId),
    entity: "MetricValue",
    gsi1pk: keys.callValues(item.orgId, item.callId),
    gsi1sk: `${value.computedAt}#${item.jobId}#${item.metricId}`,
    ...stored,
    ...(expiresAt === undefined ? {} : { expiresAt }),
  };
}

/** DynamoDB refused what was written (an item too large, a number it cannot hold): retrying cannot help. */
const isUnstorable = (error: unknown) => error instanceof Error && error.name === "ValidationException";

/**
 * An item's evaluated outcome as the result to record: the value with its identity and the
 * policies that started its job, and (for a SUCCESS) what the analytics rollups add.
 */
export function itemResultOf(
  messageId: string,
  item: WorkItem,
  outcome: EvaluationOutcome,
  { policyIds, call, definition }: { policyIds?: string[]; call?: Call; definition?: MetricDefinition },
): ItemResult {
  const value: MetricValue = {
    ...outcome,
    ...(policyIds && policyIds.length > 0 ? { policyIds } : {}),
    jobId: item.jobId,
    callId: item.callId,
    metricDefinitionId: item.metricId,
    metricVersion: item.metricVersion,
    computedAt: new Date().toISOString(),
  };
  const rollup =
    call && definition && outcome.captureStatus === "SUCCESS"
      ? {
          orgId: item.orgId,
          slug: definition.slug,
          outputType: definition.outputType,
          histogram: definition.histogram === true,
          labels: labelsOf(call),
          at: call.startedAt,
          numeric: numericValue(outcome.value, definition.outputType),
          classes: classLabels(outcome.value, definition.outputType),
        }
      : undefined;
  return { messageId, item, value, ...(rollup ? { rollup } : {}) };
}

/** The ERROR value of an item that no evaluation answered (dead-lettered, expired). */
export function itemErrorValue(
  item: WorkItem,
  errorMessage: string,
  { computedAt = new Date().toISOString(), policyIds }: { computedAt?: string; policyIds?: string[] } = {},
): MetricValue {
  return {
    jobId: item.jobId,
    callId: item.callId,
    metricDefinitionId: item.metricId,
    metricVersion: item.metricVersion,
    captureStatus: "ERROR",
    context: "CALL",
    computedAt,
    errorMessage,
    ...(policyIds?.length ? { policyIds } : {}),
  };
}

type Pending = { result: ItemResult; index: number };

/** One transaction: the job's counters and usage (only while it runs), each value once, and their rollup delta. */
function jobChunkTransaction(
  orgId: string,
  jobId: string,
  results: ItemResult[],
  expiresAt: number | undefined,
): TableTransactItem[] {
  const completed = results.filter((result) => COUNTED_AS_COMPLETED.has(result.value.captureStatus)).length;
  const usage = jobUsageUpdate(results.map((result) => result.value));
  const rollups = results.flatMap((result) => (result.rollup ? [result.rollup] : []));
  const delta =
    rollups.length > 0
      ? deltaItem(
          orgId,
          results.map((result) => itemKey(result.item)),
          rollups,
        )
      : undefined;
  return [
    {
      Update: {
        Key: keys.job(orgId, jobId),
        UpdateExpression: `ADD completedItems :completed, failedItems :failed${usage.expression} SET updatedAt = :now`,
        ...jobStillRuns,
        ExpressionAttributeValues: {
          ":completed": completed,
          ":failed": results.length - completed,
          ":now": new Date().toISOString(),
          ...usage.values,
          ...jobStillRuns.ExpressionAttributeValues,
        },
      },
    },
    ...results.map((result) => ({
      Put: { Item: valueItem(result, expiresAt), ConditionExpression: "attribute_not_exists(pk)" },
    })),
    // Never a duplicate: its id comes from these values, which are new if this commits.
    ...(delta ? [{ Put: { Item: delta } }] : []),
    // Last, without a condition: the positions of the values' conditions stay as they are.
    ...spendUpdate(orgId, jobId, usage.micros),
  ];
}

/** The single value DynamoDB refused, replaced by an ERROR value saying why (and adding nothing to rollups). */
function replacedUnstorable({ result, index }: Pending, error: unknown): Pending {
  const { rollup: _dropped, ...rest } = result;
  const reason = (error instanceof Error ? error.message : String(error)).slice(0, 300);
  return {
    index,
    result: { ...rest, value: replacedByError(result.value, `The value could not be stored: ${reason}`) },
  };
}

/**
 * After a transaction canceled by conditions: marks the values already recorded as
 * duplicates and answers the ones still to write. (The job's own condition is checked first.)
 */
function withoutDuplicates(pending: Pending[], failedAt: boolean[], outcomes: RecordOutcome[]): Pending[] {
  const isDuplicate = (position: number) => failedAt[position + 1] === true;
  for (const [position, { index }] of pending.entries()) if (isDuplicate(position)) outcomes[index] = "duplicate";
  return pending.filter((_, position) => !isDuplicate(position));
}

/** A job's results on their way to the table: what is still to write, and the outcome of each. */
interface JobChunk {
  orgId: string;
  jobId: string;
  pending: Pending[];
  outcomes: RecordOutcome[];
  /** An unstorable value was replaced by its ERROR value already. */
  replaced: boolean;
}

/** Writes one job's results; returns the outcome per result (by index in `results`). */
async function recordJobChunk(results: ItemResult[]): Promise<RecordOutcome[]> {
  const outcomes: RecordOutcome[] = results.map(() => "not-recorded");
  const first = results[0];
  if (!first) return outcomes;
  const { orgId, jobId } = first.item;
  const chunk: JobChunk = {
    orgId,
    jobId,
    outcomes,
    replaced: false,
    pending: results.map((result, index) => ({ result, index })),
  };

  const expiresAt = await retentionExpiresAt(orgId);
  for (let attempt = 1; chunk.pending.length > 0; attempt++) {
    if (attempt > MAX_ATTEMPTS) {
      logger.warn("Recording kept failing; items left for redelivery", { jobId, items: chunk.pending.length });
      return outcomes;
    }
    try {
      await table.transactWrite(
        jobChunkTransaction(
          orgId,
          jobId,
          chunk.pending.map(({ result }) => result),
          expiresAt,
        ),
      );
      for (const { index } of chunk.pending) outcomes[index] = "recorded";
      return outcomes;
    } catch (error) {
      if ((await afterFailedWrite(error, chunk, attempt)) === "done") return outcomes;
    }
  }
  return outcomes;
}

/** What a failed write leaves to do: nothing more ("done"), or another attempt with what is still pending. */
async function afterFailedWrite(error: unknown, chunk: JobChunk, attempt: number): Promise<"done" | "again"> {
  if (isUnstorable(error)) return withoutUnstorable(error, chunk);
  const failedAt = failedConditions(error);
  if (failedAt?.[0]) {
    // Canceled (or otherwise finished) job: nothing more may be recorded for it.
    for (const { index } of chunk.pending) chunk.outcomes[index] = "job-not-running";
    return "done";
  }
  const before = chunk.pending.length;
  if (failedAt) chunk.pending = withoutDuplicates(chunk.pending, failedAt, chunk.outcomes);
  else logger.warn("Recording transaction failed; retrying", { jobId: chunk.jobId, attempt, error: error as Error });
  // Throttling, a network failure or a conflict with a concurrent transaction: back off and retry.
  if (chunk.pending.length === before && attempt < MAX_ATTEMPTS) await backOffAfterConflict(attempt);
  return "again";
}

/** One value DynamoDB refused spoils the transaction for all: each is written alone, so only that one pays. */
async function withoutUnstorable(error: unknown, chunk: JobChunk): Promise<"done" | "again"> {
  if (chunk.pending.length > 1) {
    await recordEachAlone(chunk.pending, chunk.outcomes);
    return "done";
  }
  const [only] = chunk.pending;
  if (!only || chunk.replaced) {
    logger.error("Could not store even the replacement ERROR value", { jobId: chunk.jobId, error: error as Error });
    return "done";
  }
  logger.warn("Value refused by DynamoDB; recorded as ERROR", { jobId: chunk.jobId, error: error as Error });
  chunk.pending = [replacedUnstorable(only, error)];
  chunk.replaced = true;
  return "again";
}

async function recordEachAlone(pending: Pending[], outcomes: RecordOutcome[]): Promise<RecordOutcome[]> {
  for (const { result, index } of pending) outcomes[index] = (await recordJobChunk([result]))[0] ?? "not-recorded";
  return outcomes;
}

/** The result as it may be stored (see storableValue); a value turned into an ERROR adds nothing to the rollups. */
function storable(result: ItemResult): ItemResult {
  const value = storableValue(result.value);
  if (value.captureStatus === result.value.captureStatus) return { ...result, value };
  const { rollup: _dropped, ...rest } = result;
  return { ...rest, value };
}

/** Records results of any number of jobs; duplicate items within the batch share one write. */
export async function recordResults(results: ItemResult[]): Promise<Map<string, RecordOutcome>> {
  const byMessage = new Map<string, RecordOutcome>();
  const firstByItem = new Map<string, ItemResult>();
  const repeats: ItemResult[] = [];
  for (const result of results.map(storable)) {
    const key = itemKey(result.item);
    if (firstByItem.has(key)) repeats.push(result);
    else firstByItem.set(key, result);
  }
  const byJob = new Map<string, ItemResult[]>();
  for (const result of firstByItem.values()) {
    const job = `${result.item.orgId}|${result.item.jobId}`;
    byJob.set(job, [...(byJob.get(job) ?? []), result]);
  }
  // Label sets and metric names first (idempotent puts), so recorded rollups are always findable.
  await indexRollups([...firstByItem.values()].flatMap((result) => (result.rollup ? [result.rollup] : [])));
  // Chunks of one job run one after another (they share the counter); jobs run in parallel,
  // and a job whose writes fail leaves only its own items unrecorded.
  await Promise.all(
    [...byJob.values()].map(async (jobResults) => {
      // Even chunks (40 values: two of 20, not 24 and 16), so each rollup delta stays small.
      const size = Math.ceil(jobResults.length / Math.ceil(jobResults.length / VALUES_PER_TRANSACTION));
      for (let i = 0; i < jobResults.length; i += size) {
        const chunk = jobResults.slice(i, i + size);
        const outcomes = await recordJobChunk(chunk).catch((error) => {
          logger.error("Could not record a job's values", { jobId: chunk[0]?.item.jobId, error: error as Error });
          return [];
        });
        for (const [index, result] of chunk.entries()) {
          byMessage.set(result.messageId, outcomes[index] ?? "not-recorded");
        }
      }
    }),
  );
  for (const repeat of repeats) {
    const original = firstByItem.get(itemKey(repeat.item));
    const outcome = original ? byMessage.get(original.messageId) : undefined;
    byMessage.set(repeat.messageId, outcome === "not-recorded" || !outcome ? "not-recorded" : "duplicate");
  }
  return byMessage;
}

/**
 * Records results in the background as they are added: a write starts at most
 * `groupWindowMs` after the oldest result waiting for one, and results added meanwhile
 * share it. A crash then loses at most the results of that window and the write in
 * flight, not every paid-for judgment of the batch; the window keeps the job item's
 * counter (which every evaluator of the job updates) from one contended write per item.
 */
export class BackgroundRecorder {
  private readonly waiting: ItemResult[] = [];
  private readonly added: ItemResult[] = [];
  private readonly outcomes = new Map<string, RecordOutcome>();
  private draining: Promise<void> | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly record: typeof recordResults;
  private readonly groupWindowMs: number;

  constructor(record: typeof recordResults, groupWindowMs: number) {
    this.record = record;
    this.groupWindowMs = groupWindowMs;
  }

  add(result: ItemResult): void {
    this.waiting.push(result);
    this.added.push(result);
    if (!this.draining && !this.timer) this.timer = setTimeout(() => this.startDrain(), this.groupWindowMs);
  }

  private startDrain(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.draining ??= this.drain();
  }

  private async drain(): Promise<void> {
    while (this.waiting.length > 0) {
      const chunk = this.waiting.splice(0);
      try {
        for (const [messageId, outcome] of await this.record(chunk)) this.outcomes.set(messageId, outcome);
      } catch (error) {
        logger.error("Could not record results", { items: chunk.length, error: error as Error });
        for (const result of chunk) this.outcomes.set(result.messageId, "not-recorded");
      }
    }
    this.draining = undefined;
  }

  /** Writes what is still waiting now and waits for every write; outcomes by message id. */
  async settled(): Promise<{ outcomes: Map<string, RecordOutcome>; results: ItemResult[] }> {
    while (this.waiting.length > 0 || this.draining) {
      if (!this.draining) this.startDrain();
      await this.draining;
    }
    return { outcomes: this.outcomes, results: this.added };
  }
}

const valueKey = (item: WorkItem) => keys.itemResult(item.orgId, item.jobId, item.callId, item.metricId);

/** Which of `items` have a value recorded, by a consistent read. */
export async function recordedItems(items: WorkItem[]): Promise<(item: WorkItem) => boolean> {
  if (items.length === 0) return () => false;
  const found = await batchGet(items.map(valueKey), { projection: ["pk", "sk"], consistent: true });
  const recorded = new Set(found.map((item) => `${String(item.pk)}|${String(item.sk)}`));
  return (item) => {
    const { pk, sk } = valueKey(item);
    return recorded.has(`${pk}|${sk}`);
  };
}

/**
 * Results whose billed usage no value carries: not written because their job had ended (or,
 * with `failedWrites`, because the write failed and the item runs again), and with no value
 * from an earlier write (a transaction retried after it had in fact committed, batch
 * results read again).
 */
export async function unrecordedBilled(
  results: ItemResult[],
  outcomes: Map<string, RecordOutcome>,
  { failedWrites }: { failedWrites: boolean },
): Promise<ItemResult[]> {
  const unwritten = new Set<RecordOutcome>(failedWrites ? ["job-not-running", "not-recorded"] : ["job-not-running"]);
  const candidates = results.filter((r) => r.value.usage && unwritten.has(outcomes.get(r.messageId) ?? "recorded"));
  const isRecorded = await recordedItems(candidates.map((r) => r.item));
  return candidates.filter((r) => !isRecorded(r.item));
}
