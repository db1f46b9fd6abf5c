/**
 * The evaluator worker's logic (docs/pipeline.md, steps 3–4) for one SQS batch: skip items of jobs
 * that stopped, load each call and definition once, reserve the batch's model calls in the
 * shared LLM limiter, evaluate them at once (a call's first before its others), and record
 * each result exactly once within a short window of its being known (`recordGroupWindowMs`),
 * so a crash loses at most that window's results and the items in flight.
 *
 * An item that must run again is re-sent as a new message carrying its retry state, and
 * the message that brought it is acknowledged. SQS's receive count then counts only
 * deliveries whose invocation crashed, timed out or ran out of memory; those reach the
 * dead-letter queue, whose consumer records them as ERROR (dead-letters.ts). Failed
 * evaluations and crashed deliveries share one budget (`workMaxReceiveCount` attempts, then
 * ERROR); rate limiting and overload never spend it, only a ceiling in time; a hand-back
 * for lack of time, and a batch the limiter defers, spend nothing.
 */
import type { SQSRecord } from "aws-lambda";
import { refusedModel } from "../allowed-models.ts";
import { sleep } from "../concurrency.ts";
import { config, requireQueueUrl } from "../config.ts";
import type { QueueMessage, Redeliver } from "../consumers.ts";
import { keys } from "../keys.ts";
import { emptyUsage, estimateCostUsd } from "../llm/pricing.ts";
import type { Demand, Share, SharedRateLimiter } from "../llm/rate-limiter.ts";
import { logger, withLogContext } from "../logger.ts";
import {
  ALARMED_COUNTS,
  LLM_DEFERRED_ITEMS,
  publishCount,
  publishEvaluationMetrics,
  publishUnrecordedSpend,
} from "../observability.ts";
import type { Call } from "../schemas/call.ts";
import { isRunningStatus, type JudgeMode, type LlmMode, type WorkItem } from "../schemas/job.ts";
import type { MetricDefinition } from "../schemas/metric.ts";
import { batchGet } from "../store/batch-get.ts";
import { addBilledAttempts, type BilledAttempt } from "../store/billed-attempts.ts";
import { getCall } from "../store/calls.ts";
import { blockJobLlmCalls, JOB_COST_ATTRIBUTE } from "../store/jobs.ts";
import { getMetricVersions } from "../store/metrics.ts";
import { organizationSettings } from "../store/organizations.ts";
import { billedUsageOf, LlmCallsBlockedError, RetryableEvaluationError } from "./evaluation-errors.ts";
import {
  type EvaluateGroup,
  type EvaluateItem,
  type EvaluationOutcome,
  evaluateByCalculationType,
  groupingKey,
  judgeTogether,
  judgingUnits,
  llmRateLimiter,
  modelDemand,
} from "./evaluators.ts";
import { sendMessages, workGroupOf, workMessage } from "./queue.ts";
import {
  BackgroundRecorder,
  type ItemResult,
  itemResultOf,
  type RecordOutcome,
  recordedItems,
  recordResults,
  unrecordedBilled,
} from "./record.ts";

/** An item to send back to the work queue, with the message that brought it. */
export interface Retry {
  messageId: string;
  item: WorkItem;
  delaySeconds: number;
}

export interface EvaluatorDeps {
  evaluate: EvaluateItem;
  /** Judges a grouped job's LLM metrics of one call together. */
  evaluateGroup: EvaluateGroup;
  /** Sends items back to the work queue as new messages, each after its delay. */
  resend: (retries: Retry[]) => Promise<void>;
  /** Milliseconds left in the invocation (Lambda context); unset means no deadline. */
  remainingTimeMs?: () => number;
  /** Hands a batch-mode job's LLM items to the batch queue (the Message Batches API). */
  forwardToBatch: (items: WorkItem[]) => Promise<void>;
  /** Records on the job that its LLM calls are futile, so other workers stop making them. */
  blockLlmCalls: (orgId: string, jobId: string, reason: string) => Promise<void>;
  /** The schedule every evaluator shares, keeping model calls under the account's rate limits. */
  limiter: Pick<SharedRateLimiter, "admit">;
  /** Writes results exactly once (tests inject failures). */
  record: typeof recordResults;
  /** Adds to a job the usage of billed answers no recorded value carries, each once. */
  addBilledAttempts: typeof addBilledAttempts;
}

interface ParsedRecord {
  record: SQSRecord;
  item: WorkItem;
  receiveCount: number;
}

/** Time kept back for recording the batch's results after the last LLM call. */
const DEADLINE_MARGIN_MS = 10_000;

/** SQS delays a message by at most 15 minutes. */
const MAX_SQS_DELAY_SECONDS = 900;

/**
 * Jittered exponential backoff for the `attempt`-th retry, capped at `retryMaxDelaySeconds`,
 * but never sooner than the provider's retry-after (up to SQS's longest delay).
 */
export function retryDelaySeconds(attempt: number, retryAfterSeconds?: number): number {
  const { retryBaseDelaySeconds, retryMaxDelaySeconds } = config();
  const exponential = retryBaseDelaySeconds * 2 ** Math.max(0, attempt - 1);
  // Jitter spreads a burst of retries instead of stampeding back together.
  const jittered = Math.min(retryMaxDelaySeconds, exponential * (0.5 + Math.random() / 2));
  return Math.round(Math.max(jittered, Math.min(retryAfterSeconds ?? 0, MAX_SQS_DELAY_SECONDS)));
}

const resendWorkItems: EvaluatorDeps["resend"] = (retries) =>
  sendMessages(
    requireQueueUrl("work"),
    retries.map(({ item, delaySeconds }) => workMessage(item, delaySeconds)),
  );

export const defaultEvaluatorDeps: EvaluatorDeps = {
  evaluate: evaluateByCalculationType,
  evaluateGroup: judgeTogether,
  resend: resendWorkItems,
  forwardToBatch: (items) =>
    sendMessages(
      requireQueueUrl("batch"),
      items.map((item) => JSON.stringify(item)),
    ),
  blockLlmCalls: blockJobLlmCalls,
  limiter: { admit: (...request) => llmRateLimiter().admit(...request) },
  record: recordResults,
  addBilledAttempts,
};

/**
 * The item as it goes back to the queue: deliveries before this one crashed (SQS counted
 * them), so they join its failed attempts; the new message starts its receive count anew.
 */
function carried({ item, receiveCount }: ParsedRecord, failedNow = 0): WorkItem {
  const failedAttempts = (item.failedAttempts ?? 0) + receiveCount - 1 + failedNow;
  // A limiter turn is the deferral's to give, for one return.
  const { failedAttempts: _previous, turnAt: _turn, ...rest } = item;
  return failedAttempts > 0 ? { ...rest, failedAttempts } : rest;
}

/** Attempts an item has used, this one included. */
const attemptsUsed = ({ item, receiveCount }: ParsedRecord) => (item.failedAttempts ?? 0) + receiveCount;

interface JobState {
  status: string;
  llmBlockedReason?: string;
  /** The job's cost cap, and what it has spent: recorded, plus what this invocation judged since. */
  maxCostUsd?: number;
  spentUsd: number;
  /** Expected cost of this invocation's units of the job still calling the model. */
  reservedUsd: number;
  policyIds?: string[];
  judgeMode?: JudgeMode;
  llmMode?: LlmMode;
}

interface BatchContext {
  jobs: Map<string, JobState>;
  calls: Map<string, Call | undefined>;
  definitions: Map<string, MetricDefinition>;
  /**
   * Redelivered items already recorded (by an invocation that died after recording them), so
   * they are not judged (and paid for) again. Only redeliveries are checked: a first delivery
   * is almost never recorded.
   */
  isRecorded: (item: WorkItem) => boolean;
  /** Per organization: the models its settings allow (undefined: any). */
  allowedModels: Map<string, string[] | undefined>;
}

const jobKey = (item: WorkItem) => keys.job(item.orgId, item.jobId).pk;
const callKey = (item: WorkItem) => `${item.orgId}|${item.callId}`;
const definitionKey = (item: WorkItem) => `${item.orgId}|${item.metricId}@${item.metricVersion}`;

async function loadJobs(items: WorkItem[]): Promise<Map<string, JobState>> {
  const jobKeys = [...new Map(items.map((i) => [jobKey(i), keys.job(i.orgId, i.jobId)])).values()];
  // Consistent: a job canceled a moment ago must not start another LLM call.
  const jobs = await batchGet(jobKeys, {
    projection: [
      "pk",
      "status",
      "llmBlockedReason",
      "policyIds",
      "judgeMode",
      "llmMode",
      "maxCostUsd",
      JOB_COST_ATTRIBUTE,
    ],
    consistent: true,
  });
  return new Map(
    jobs.map((job): [string, JobState] => [
      String(job.pk),
      {
        status: String(job.status),
        llmBlockedReason: job.llmBlockedReason as string | undefined,
        policyIds: job.policyIds as string[] | undefined,
        judgeMode: job.judgeMode as JudgeMode | undefined,
        llmMode: job.llmMode as LlmMode | undefined,
        ...(typeof job.maxCostUsd === "number" ? { maxCostUsd: job.maxCostUsd } : {}),
        spentUsd: Number(job[JOB_COST_ATTRIBUTE] ?? 0),
        reservedUsd: 0,
      },
    ]),
  );
}

async function loadCalls(items: WorkItem[]): Promise<Map<string, Call | undefined>> {
  const callKeys = [...new Map(items.map((i) => [callKey(i), i])).values()];
  const calls = await Promise.all(callKeys.map((i) => getCall(i.orgId, i.callId)));
  return new Map(callKeys.map((i, index) => [callKey(i), calls[index]]));
}

async function loadDefinitions(items: WorkItem[]): Promise<Map<string, MetricDefinition>> {
  const byOrg = Map.groupBy(items, (i) => i.orgId);
  const found = new Map<string, MetricDefinition>();
  for (const [orgId, orgItems] of byOrg) {
    const versions = await getMetricVersions(
      orgId,
      orgItems.map((i) => ({ metricId: i.metricId, version: i.metricVersion })),
    );
    for (const [ref, definition] of versions) found.set(`${orgId}|${ref}`, definition);
  }
  return found;
}

/** Each organization's allowed models (settings the container keeps for 30 s): undefined allows any. */
async function loadAllowedModels(items: WorkItem[]): Promise<Map<string, string[] | undefined>> {
  const orgIds = [...new Set(items.map((i) => i.orgId))];
  const settings = await Promise.all(orgIds.map((orgId) => organizationSettings(orgId)));
  return new Map(orgIds.map((orgId, i) => [orgId, settings[i]?.allowedModels ?? undefined]));
}

/** The jobs' status, calls, definitions and recorded redeliveries in parallel: one round trip per batch. */
async function loadBatchContext(entries: ParsedRecord[]): Promise<BatchContext> {
  const items = entries.map((entry) => entry.item);
  const redelivered = entries.filter((entry) => entry.receiveCount > 1).map((entry) => entry.item);
  const [jobs, calls, definitions, isRecorded, allowedModels] = await Promise.all([
    loadJobs(items),
    loadCalls(items),
    loadDefinitions(items),
    recordedItems(redelivered),
    loadAllowedModels(items),
  ]);
  return { jobs, calls, definitions, isRecorded, allowedModels };
}

const errorOutcome = (errorMessage: string): EvaluationOutcome => ({
  captureStatus: "ERROR",
  context: "CALL",
  errorMessage,
});

function resultOf(
  { record, item }: ParsedRecord,
  outcome: EvaluationOutcome,
  job: JobState | undefined,
  source: { call?: Call; definition?: MetricDefinition } = {},
): ItemResult {
  return itemResultOf(record.messageId, item, outcome, { policyIds: job?.policyIds, ...source });
}

/** What to do with an item whose evaluation failed: send it back, or record ERROR once its budget is spent. */
function afterFailure(
  parsed: ParsedRecord,
  error: unknown,
  now = Date.now(),
): { retry: Retry } | { outcome: EvaluationOutcome } {
  const message = error instanceof Error ? error.message : String(error);
  const retryAfter = error instanceof RetryableEvaluationError ? error.retryAfterSeconds : undefined;
  const messageId = parsed.record.messageId;
  if (error instanceof RetryableEvaluationError && error.throttled) {
    const since = parsed.item.throttledSince ?? new Date(now).toISOString();
    const maxWaitSeconds = config().rateLimitMaxWaitSeconds;
    if (now - Date.parse(since) >= maxWaitSeconds * 1000) {
      return { outcome: errorOutcome(`Rate limited for over ${maxWaitSeconds} s: ${message}`) };
    }
    const throttledAttempts = (parsed.item.throttledAttempts ?? 0) + 1;
    return {
      retry: {
        messageId,
        item: { ...carried(parsed), throttledAttempts, throttledSince: since },
        delaySeconds: retryDelaySeconds(throttledAttempts, retryAfter),
      },
    };
  }
  const attempts = attemptsUsed(parsed);
  if (attempts >= config().workMaxReceiveCount) {
    return { outcome: errorOutcome(`Gave up after ${attempts} attempts: ${message}`) };
  }
  logger.warn("Item failed; will retry", { messageId, attempts, error: message });
  return {
    retry: {
      messageId,
      item: { ...carried(parsed, 1), lastError: message.slice(0, 500) },
      delaySeconds: retryDelaySeconds(attempts, retryAfter),
    },
  };
}

/** Evaluates one item with what the batch loaded; throws what `afterFailure` handles. */
async function evaluateItem(
  { item }: ParsedRecord,
  context: BatchContext,
  job: JobState,
  deps: EvaluatorDeps,
  estimatedInputTokens: number | undefined,
): Promise<EvaluationOutcome> {
  const call = context.calls.get(callKey(item));
  if (!call) throw new Error(`Call ${item.callId} not found`);
  const definition = context.definitions.get(definitionKey(item));
  if (!definition) throw new Error(`Metric ${item.metricId} version ${item.metricVersion} not found`);
  if (definition.calculationType === "LLM_JUDGE" && job.llmBlockedReason) {
    return errorOutcome(`LLM calls stopped for this job: ${job.llmBlockedReason}`);
  }
  return deps.evaluate(definition, call, estimatedInputTokens);
}

/** What a batch run collects: results on their way to the table, and items to send again. */
interface BatchRun {
  recorder: BackgroundRecorder;
  retries: Retry[];
  /** Items handed to the batch queue; their messages are acknowledged once they are sent. */
  forwards: ParsedRecord[];
  /** Billed answers no value carries, to add to their jobs' usage. */
  billed: { item: WorkItem; attempt: BilledAttempt }[];
  /** Items the provider's rate limits sent back (429/529). */
  rateLimited: number;
  /** Items the shared limiter sent back for later, its schedule full. */
  deferred: number;
  /** A failed attempt: the item runs again later, or, its attempts spent, records ERROR. */
  fail(entry: ParsedRecord, error: unknown, job?: JobState): void;
  /** Keeps what a failed evaluation had been billed for, under the delivery of `entry`. */
  billFailure(entry: ParsedRecord, error: unknown): void;
}

/** Names one delivery of an item: a redelivery is evaluated (and billed) anew. */
const deliveryId = ({ record, receiveCount }: ParsedRecord) => `${record.messageId}#${receiveCount}`;

/** Evaluates a batch of work items; answers the messages SQS must deliver again. */
export async function processWorkBatch(messages: QueueMessage<WorkItem>[], deps: EvaluatorDeps): Promise<Redeliver> {
  const parsed: ParsedRecord[] = messages.map(({ record, body, receiveCount }) => ({
    record,
    item: body,
    receiveCount,
  }));
  const run: BatchRun = {
    recorder: new BackgroundRecorder(deps.record, config().recordGroupWindowMs),
    retries: [],
    forwards: [],
    billed: [],
    rateLimited: 0,
    deferred: 0,
    fail(entry, error, job) {
      if (error instanceof RetryableEvaluationError && error.throttled) this.rateLimited++;
      const next = afterFailure(entry, error);
      if ("retry" in next) this.retries.push(next.retry);
      else this.recorder.add(resultOf(entry, next.outcome, job));
    },
    billFailure(entry, error) {
      const billed = billedUsageOf(error);
      if (billed) this.billed.push({ item: entry.item, attempt: { attemptId: deliveryId(entry), ...billed } });
    },
  };
  let context: BatchContext | undefined;
  try {
    if (parsed.length > 0) context = await loadBatchContext(parsed);
  } catch (error) {
    logger.warn("Could not load the batch's jobs, calls or definitions", { error: error as Error });
    for (const entry of parsed) run.fail(entry, error);
  }
  if (context) await evaluateConcurrently(parsed, context, deps, run);

  const { outcomes, results } = await run.recorder.settled();
  publishEvaluationMetrics(results.filter((r) => outcomes.get(r.messageId) === "recorded").map((r) => r.value));
  publishCount(ALARMED_COUNTS.llmRateLimited, run.rateLimited);
  publishCount(LLM_DEFERRED_ITEMS, run.deferred);
  await addUnrecordedUsage(parsed, results, outcomes, run, deps).catch((error) =>
    // The items' own outcomes stand; only the job's bill misses these answers.
    logger.error("Could not add billed attempts to the jobs' usage", { error: error as Error }),
  );
  /** Messages left for SQS to redeliver (and, past the queue's receive limit, dead-letter). */
  const redeliver = new Set(retryUnrecorded(parsed, outcomes, run.retries));
  if (run.forwards.length > 0) {
    try {
      await deps.forwardToBatch(run.forwards.map((entry) => carried(entry)));
    } catch (error) {
      logger.warn("Could not hand items to the batch queue; leaving them to redelivery", { error: error as Error });
      for (const entry of run.forwards) redeliver.add(entry.record.messageId);
    }
  }
  if (run.retries.length > 0) {
    try {
      await deps.resend(run.retries);
    } catch (error) {
      // Their messages come back after the queue's visibility timeout instead.
      logger.warn("Could not re-send items; leaving them to redelivery", { error: error as Error });
      for (const retry of run.retries) redeliver.add(retry.messageId);
    }
  }
  return redeliver;
}

/**
 * Adds to each job the usage of answers it was billed for that no recorded value carries:
 * failed evaluations that had paid for an answer, and results not written (their job ended,
 * or the write failed and the item runs again).
 */
async function addUnrecordedUsage(
  parsed: ParsedRecord[],
  results: ItemResult[],
  outcomes: Map<string, RecordOutcome>,
  run: BatchRun,
  deps: EvaluatorDeps,
) {
  const byMessage = new Map(parsed.map((entry) => [entry.record.messageId, entry]));
  const billed = [...run.billed];
  for (const result of await unrecordedBilled(results, outcomes, { failedWrites: true })) {
    const entry = byMessage.get(result.messageId);
    const { usage, estimatedCostUsd } = result.value;
    if (entry) billed.push({ item: result.item, attempt: { attemptId: deliveryId(entry), usage, estimatedCostUsd } });
  }
  const byJob = new Map<string, { orgId: string; jobId: string; attempts: BilledAttempt[] }>();
  for (const { item, attempt } of billed) {
    const job = byJob.get(jobKey(item)) ?? { orgId: item.orgId, jobId: item.jobId, attempts: [] };
    job.attempts.push(attempt);
    byJob.set(jobKey(item), job);
  }
  for (const { orgId, jobId, attempts } of byJob.values()) await deps.addBilledAttempts(orgId, jobId, attempts);
  publishUnrecordedSpend(billed.map(({ attempt }) => attempt));
}

/** An item to evaluate, with its job. */
interface Runnable {
  entry: ParsedRecord;
  job: JobState;
}

/**
 * The batch's items to evaluate, a call's items next to each other: items of jobs that
 * stopped and redeliveries recorded already are left out, and an item of an unknown job fails.
 */
function runnableItems(parsed: ParsedRecord[], loaded: BatchContext, run: BatchRun): Runnable[] {
  const ordered = [...Map.groupBy(parsed, (p) => callKey(p.item)).values()].flat();
  const runnable: Runnable[] = [];
  for (const entry of ordered) {
    const job = loaded.jobs.get(jobKey(entry.item));
    // Canceled or finished job, or an item recorded before its last delivery died: nothing to do.
    if (job && !isRunningStatus(job.status)) continue;
    if (loaded.isRecorded(entry.item)) continue;
    if (!job) {
      // Not found by a consistent read: retried like any failure, never silently dropped.
      logger.error("Work item names a job that does not exist", { jobId: entry.item.jobId });
      run.fail(entry, new Error(`Job ${entry.item.jobId} not found`));
      continue;
    }
    const refused = refusedModelOf(entry.item, loaded);
    if (refused) {
      run.recorder.add(resultOf(entry, errorOutcome(refused), job));
      continue;
    }
    if (goesToBatch(entry.item, job, loaded)) run.forwards.push(entry);
    else runnable.push({ entry, job });
  }
  return runnable;
}

/** Why the item's model may not be called: the organization no longer allows it. */
function refusedModelOf(item: WorkItem, loaded: BatchContext): string | undefined {
  const definition = loaded.definitions.get(definitionKey(item));
  const model = definition && refusedModel(definition, loaded.allowedModels.get(item.orgId));
  return model && `The organization does not allow the model ${model} (settings.allowedModels)`;
}

/** A batch-mode job's item the model judges (there is a transcript to judge): the Message Batches API's. */
function goesToBatch(item: WorkItem, job: JobState, loaded: BatchContext): boolean {
  if (job.llmMode !== "batch" || job.llmBlockedReason) return false;
  const definition = loaded.definitions.get(definitionKey(item));
  const call = loaded.calls.get(callKey(item));
  return definition?.calculationType === "LLM_JUDGE" && call !== undefined && call.transcript.length > 0;
}

/** Items judged in one request: a grouped job's items of one call that share a grouping key. */
function groupKey({ entry, job }: Runnable, loaded: BatchContext): string | undefined {
  const definition = loaded.definitions.get(definitionKey(entry.item));
  const key = definition && groupingKey(definition);
  const groupable =
    key !== undefined &&
    job.judgeMode === "grouped" &&
    !job.llmBlockedReason &&
    loaded.calls.get(callKey(entry.item)) !== undefined;
  return groupable ? `${jobKey(entry.item)}|${callKey(entry.item)}|${key}` : undefined;
}

/** A unit's model calls, for the limiter: none for built-ins, stopped jobs and calls without a transcript. */
function demandOf(unit: Runnable[], loaded: BatchContext, cacheWarm: boolean) {
  const [first] = unit;
  const call = first && loaded.calls.get(callKey(first.entry.item));
  if (!first || !call || first.job.llmBlockedReason) return undefined;
  const definitions = unit.map(({ entry }) => loaded.definitions.get(definitionKey(entry.item)));
  const known = definitions.filter((d): d is MetricDefinition => d !== undefined);
  return known.length === unit.length ? modelDemand(known, call, cacheWarm) : undefined;
}

/** What the batch's schedule knows of a unit's model request. */
interface UnitPlan {
  /** Its estimated input tokens, for its answer to be compared with. */
  estimatedInputTokens: number;
  /** Its call's prompt is long enough to cache: the call's first such unit writes it before the others read it. */
  cacheable: boolean;
  /** When it may start: spread over its reservation, so a batch does not arrive as one burst. */
  startAt?: number;
}

/** One model's calls of one tenant in a batch, and the earliest limiter turn they hold. */
interface ModelReservation {
  model: string;
  share: Share;
  demand: Demand;
  units: Runnable[][];
  turnAt?: number;
}

/**
 * The batch's model calls, one reservation per model and tenant (a work group: an
 * organization, or its bulk work), and each unit's plan.
 */
function modelReservations(units: Runnable[][], loaded: BatchContext) {
  const plans = new Map<Runnable[], UnitPlan>();
  const reservations = new Map<string, ModelReservation>();
  const warmCalls = new Set<string>();
  for (const unit of units) {
    const [first] = unit;
    if (!first) continue;
    const call = callKey(first.entry.item);
    const need = demandOf(unit, loaded, warmCalls.has(call));
    if (!need) continue;
    warmCalls.add(call);
    const share = { tenant: workGroupOf(first.entry.item), bulk: first.entry.item.bulk === true };
    const key = `${need.model}|${share.tenant}`;
    const reservation: ModelReservation = reservations.get(key) ?? {
      model: need.model,
      share,
      demand: { requests: 0, inputTokens: 0 },
      units: [],
    };
    reservation.demand.requests += need.demand.requests;
    reservation.demand.inputTokens += need.demand.inputTokens;
    reservation.units.push(unit);
    plans.set(unit, { estimatedInputTokens: need.demand.inputTokens, cacheable: need.cacheable });
    // The batch holds the earliest turn any of its items came back for.
    for (const { entry } of unit) {
      const { turnAt } = entry.item;
      if (turnAt !== undefined) reservation.turnAt = Math.min(turnAt, reservation.turnAt ?? turnAt);
    }
    reservations.set(key, reservation);
  }
  return { reservations: reservations.values(), plans };
}

/**
 * Asks the shared limiter for the batch's model calls, one reservation per model and tenant;
 * the units it cannot fit soon go back to the queue for when it can, spending nothing.
 * A limiter that cannot be reached holds nothing back: the provider's 429s still protect.
 */
async function admitModelCalls(units: Runnable[][], loaded: BatchContext, deps: EvaluatorDeps, run: BatchRun) {
  const deferred = new Set<Runnable[]>();
  const { reservations, plans } = modelReservations(units, loaded);
  for (const { model, share, demand, units: reserved, turnAt } of reservations) {
    const admission = await deps.limiter.admit(model, demand, share, turnAt).catch((error: unknown) => {
      logger.warn("Could not reach the LLM limiter; calling the model unscheduled", { error: error as Error });
      return undefined;
    });
    if (!admission) continue;
    if (admission.admitted) {
      const admittedAt = Date.now();
      const step = admission.spanMs / reserved.length;
      for (const [index, unit] of reserved.entries()) {
        const plan = plans.get(unit);
        if (plan) plan.startAt = admittedAt + index * step;
      }
      continue;
    }
    // A turn already spreads the returns; without one, jitter does.
    const jitter = admission.turnAt === undefined ? 1 + Math.random() / 5 : 1;
    const delaySeconds = Math.min(MAX_SQS_DELAY_SECONDS, Math.ceil((admission.retryInMs / 1000) * jitter));
    const turn = admission.turnAt === undefined ? {} : { turnAt: Math.round(admission.turnAt) };
    for (const unit of reserved) {
      deferred.add(unit);
      for (const { entry } of unit) {
        run.retries.push({ messageId: entry.record.messageId, item: { ...carried(entry), ...turn }, delaySeconds });
      }
    }
    run.deferred += reserved.flat().length;
  }
  return { units: units.filter((unit) => !deferred.has(unit)), plans };
}

/**
 * The batch's units (an item, or a group judged in one request) at once, as the limiter
 * admits them, after a first one alone: a call's first cacheable unit before its others, so
 * it writes the call's prompt cache and they read it (a transcript too short to cache has
 * nothing to write: its units start together); each call's units apart from another's. An
 * invocation takes about as long as its slowest call's units, not the sum of all of them.
 */
async function evaluateConcurrently(parsed: ParsedRecord[], loaded: BatchContext, deps: EvaluatorDeps, run: BatchRun) {
  const { units, plans } = await admitModelCalls(
    judgingUnits(runnableItems(parsed, loaded, run), (item) => groupKey(item, loaded)),
    loaded,
    deps,
    run,
  );
  let started = 0;
  const runUnit = async (unit: Runnable[]) => {
    const [first] = unit;
    if (!first) return;
    const plan = plans.get(unit);
    const slot = (plan?.startAt ?? 0) - Date.now();
    if (slot > 0) await sleep(slot);
    // The first unit always runs, so an invocation short on time from the start still makes progress.
    if (started++ > 0 && outOfTime(deps)) {
      // Not enough time left for another LLM call: hand the unit back, spending none of its attempts.
      for (const { entry } of unit) {
        run.retries.push({ messageId: entry.record.messageId, item: carried(entry), delaySeconds: 0 });
      }
      return;
    }
    const reserved = await reserveWithinCostCap(unit, loaded, deps);
    // A unit is one call's items of one job: its lines name them.
    await withLogContext({ orgId: first.entry.item.orgId, jobId: first.entry.item.jobId }, () =>
      unit.length === 1
        ? evaluateOne(first.entry, loaded, first.job, deps, run, plan?.estimatedInputTokens)
        : evaluateTogether(unit, loaded, deps, run, plan?.estimatedInputTokens),
    ).finally(() => {
      first.job.reservedUsd -= reserved;
    });
  };
  const [first] = units;
  if (!first) return;
  // A job that has paid for no answer yet sends one unit alone first: a key the API rejects or
  // an account it cannot bill stops the job's calls after one request, not after the whole
  // batch's. A paid job's key and account have worked: its units start together, and an
  // invocation takes about one call's latency less.
  const probe = first[0] && first[0].job.spentUsd === 0 ? first : undefined;
  if (probe) await runUnit(probe);
  const others = probe ? units.slice(1) : units;
  const byCall = Map.groupBy(others, (unit) => (unit[0] ? callKey(unit[0].entry.item) : ""));
  const cacheWrittenFor = probe?.[0] && plans.get(probe)?.cacheable ? callKey(probe[0].entry.item) : undefined;
  await Promise.all(
    [...byCall].map(async ([call, callUnits]) => {
      const writer = call === cacheWrittenFor ? undefined : callUnits.find((unit) => plans.get(unit)?.cacheable);
      if (writer) await runUnit(writer);
      await Promise.all(callUnits.filter((unit) => unit !== writer).map(runUnit));
    }),
  );
}

const outOfTime = (deps: EvaluatorDeps) =>
  deps.remainingTimeMs !== undefined && deps.remainingTimeMs() < config().anthropicTimeoutMs + DEADLINE_MARGIN_MS;

async function evaluateOne(
  entry: ParsedRecord,
  loaded: BatchContext,
  job: JobState,
  deps: EvaluatorDeps,
  run: BatchRun,
  estimatedInputTokens: number | undefined,
) {
  const source = {
    call: loaded.calls.get(callKey(entry.item)),
    definition: loaded.definitions.get(definitionKey(entry.item)),
  };
  try {
    const outcome = await evaluateItem(entry, loaded, job, deps, estimatedInputTokens);
    job.spentUsd += outcome.estimatedCostUsd ?? 0;
    run.recorder.add(resultOf(entry, outcome, job, source));
  } catch (error) {
    run.billFailure(entry, error);
    if (!(error instanceof LlmCallsBlockedError)) return run.fail(entry, error, job);
    await stopLlmCalls(entry.item, job, error.message, deps);
    run.recorder.add(resultOf(entry, errorOutcome(error.message), job, source));
  }
}

/** A group of one call's items judged in one request; its outcomes are recorded item by item. */
async function evaluateTogether(
  unit: Runnable[],
  loaded: BatchContext,
  deps: EvaluatorDeps,
  run: BatchRun,
  estimatedInputTokens: number | undefined,
) {
  const sources = unit.map(({ entry }) => ({
    call: loaded.calls.get(callKey(entry.item)) as Call,
    definition: loaded.definitions.get(definitionKey(entry.item)) as MetricDefinition,
  }));
  const [first] = unit;
  const [source] = sources;
  if (!first || !source) return;
  if (first.job.llmBlockedReason) {
    const stopped = errorOutcome(`LLM calls stopped for this job: ${first.job.llmBlockedReason}`);
    for (const [i, { entry, job }] of unit.entries()) run.recorder.add(resultOf(entry, stopped, job, sources[i]));
    return;
  }
  try {
    const outcomes = await deps.evaluateGroup(
      sources.map((s) => s.definition),
      source.call,
      estimatedInputTokens,
    );
    for (const [i, { entry, job }] of unit.entries()) {
      const outcome = outcomes[i] ?? errorOutcome("The grouped judgment returned no answer for this metric");
      job.spentUsd += outcome.estimatedCostUsd ?? 0;
      run.recorder.add(resultOf(entry, outcome, job, sources[i]));
    }
  } catch (error) {
    // The group's bill, under its first item: the group's other items carry none of it.
    run.billFailure(first.entry, error);
    if (!(error instanceof LlmCallsBlockedError)) {
      for (const { entry, job } of unit) run.fail(entry, error, job);
      return;
    }
    await stopLlmCalls(first.entry.item, first.job, error.message, deps);
    for (const [i, { entry, job }] of unit.entries()) {
      run.recorder.add(resultOf(entry, errorOutcome(error.message), job, sources[i]));
    }
  }
}

/** Output tokens a judgment is expected to use, for a unit's expected cost. */
const EXPECTED_OUTPUT_TOKENS = 400;

/**
 * A job with a cost cap makes a model call only while what it spent, plus the expected cost
 * of its calls under way in this invocation and of this one, stays within the cap; then its
 * remaining LLM items record ERROR with the reason. Answers the cost reserved for the unit.
 * Invocations running at once each start from the cost recorded: they may overshoot the cap
 * by what they have under way.
 */
async function reserveWithinCostCap(unit: Runnable[], loaded: BatchContext, deps: EvaluatorDeps): Promise<number> {
  const [first] = unit;
  const job = first?.job;
  if (!first || !job || job.maxCostUsd === undefined || job.llmBlockedReason) return 0;
  const demand = demandOf(unit, loaded, true);
  if (!demand) return 0;
  const usage = { ...emptyUsage(), inputTokens: demand.demand.inputTokens, outputTokens: EXPECTED_OUTPUT_TOKENS };
  const expected = estimateCostUsd(demand.model, usage) ?? 0;
  if (job.spentUsd + job.reservedUsd + expected <= job.maxCostUsd) {
    job.reservedUsd += expected;
    return expected;
  }
  const spent = job.spentUsd.toFixed(4);
  await stopLlmCalls(
    first.entry.item,
    job,
    `not run: the job reached its cost cap of $${job.maxCostUsd} ($${spent} spent)`,
    deps,
  );
  return 0;
}

/** Marks the job's LLM calls as futile, once: its later items record ERROR without calling the model. */
async function stopLlmCalls(item: WorkItem, job: JobState, reason: string, deps: EvaluatorDeps) {
  if (job.llmBlockedReason) return;
  job.llmBlockedReason = reason;
  logger.error("LLM calls stopped for job", { jobId: item.jobId, reason });
  await deps
    .blockLlmCalls(item.orgId, item.jobId, reason)
    .catch((error) => logger.warn("Could not mark the job's LLM calls as stopped", { error: error as Error }));
}

/**
 * Items whose result is lost run again, as a failed attempt; once their budget is spent,
 * they are answered for SQS to redeliver towards the dead-letter queue (whose consumer
 * records ERROR).
 */
function retryUnrecorded(parsed: ParsedRecord[], outcomes: Map<string, RecordOutcome>, retries: Retry[]): string[] {
  const byMessage = new Map(parsed.map((entry) => [entry.record.messageId, entry]));
  const redeliver: string[] = [];
  for (const [messageId, outcome] of outcomes) {
    const entry = byMessage.get(messageId);
    if (outcome !== "not-recorded" || !entry) continue;
    const attempts = attemptsUsed(entry);
    if (attempts < config().workMaxReceiveCount) {
      const lastError = "its result could not be recorded";
      retries.push({ messageId, item: { ...carried(entry, 1), lastError }, delaySeconds: retryDelaySeconds(attempts) });
    } else redeliver.push(messageId);
  }
  return redeliver;
}
