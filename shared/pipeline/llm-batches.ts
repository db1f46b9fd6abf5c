/**
 * Batch mode (docs/pipeline.md, "Batch mode"): a batch-mode job's LLM items are judged
 * through Anthropic's Message Batches API, at half the price. Nothing waits in a Lambda for
 * a batch to end:
 * - the submitter (consumer of the batch queue) writes a submission listing its items, then
 *   creates the provider batch and records its id;
 * - the collector (a schedule) finishes a submission a submitter left without a batch, polls
 *   the batches, and records an ended batch's results through the same exactly-once
 *   transaction as the evaluator, a chunk at a time with a checkpoint.
 * A request that comes back errored, expired or with an invalid answer runs again through
 * the batch queue, spending one of the item's attempts; once they are spent, or when retrying
 * cannot help, the item is recorded as ERROR with the reason.
 */
import Anthropic from "@anthropic-ai/sdk";
import { mapLimit } from "../concurrency.ts";
import { config, requireQueueUrl } from "../config.ts";
import type { QueueMessage, Redeliver } from "../consumers.ts";
import { keys } from "../keys.ts";
import { anthropicClient } from "../llm/client.ts";
import { interpretBatchAnswer, judgeRequestFor } from "../llm/judge.ts";
import { logger } from "../logger.ts";
import { ALARMED_COUNTS, publishCount, publishEvaluationMetrics, publishUnrecordedSpend } from "../observability.ts";
import type { Call } from "../schemas/call.ts";
import { isRunningStatus, type JudgeMode, type WorkItem } from "../schemas/job.ts";
import type { MetricDefinition } from "../schemas/metric.ts";
import { batchGet } from "../store/batch-get.ts";
import { addBilledAttempts, type BilledAttempt } from "../store/billed-attempts.ts";
import { getCall } from "../store/calls.ts";
import { blockJobLlmCalls } from "../store/jobs.ts";
import {
  chunkUnits,
  closeSubmission,
  customIdOf,
  deleteSubmission,
  isKnownProviderBatch,
  type LlmSubmission,
  listJobSubmissions,
  listOpenSubmissions,
  markSubmitted,
  newSubmissionId,
  putSubmission,
  type SubmissionUnit,
  saveCheckpoint,
} from "../store/llm-submissions.ts";
import { getMetricVersions } from "../store/metrics.ts";
import { retryDelaySeconds } from "./evaluate.ts";
import { type EvaluationOutcome, groupingKey, judgeSettings, judgingUnits } from "./evaluators.ts";
import { sendMessages } from "./queue.ts";
import {
  type ItemResult,
  itemErrorValue,
  itemResultOf,
  type RecordOutcome,
  recordedItems,
  recordResults,
  unrecordedBilled,
} from "./record.ts";

type BatchesClient = Pick<Anthropic, "messages">;

export interface LlmBatchDeps {
  client: () => Promise<BatchesClient>;
  judge: { defaultModel: string; maxTokens: number; effort?: "low" | "medium" | "high" };
  record: typeof recordResults;
  /** Sends items to the batch queue again, after a delay. */
  resend: (items: WorkItem[], delaySeconds: number) => Promise<void>;
  blockLlmCalls: (orgId: string, jobId: string, reason: string) => Promise<void>;
  /** Adds to a job the usage of billed answers no recorded value carries, each once. */
  addBilledAttempts: typeof addBilledAttempts;
  now: () => number;
}

export const defaultLlmBatchDeps = (): LlmBatchDeps => ({
  client: anthropicClient,
  judge: judgeSettings(),
  record: recordResults,
  resend: (items, delaySeconds) =>
    sendMessages(
      requireQueueUrl("batch"),
      items.map((item) => ({ body: JSON.stringify(item), delaySeconds })),
    ),
  blockLlmCalls: blockJobLlmCalls,
  addBilledAttempts,
  now: Date.now,
});

/** Result lines recorded per chunk, each chunk followed by a checkpoint. */
const RESULT_LINES_PER_CHUNK = 100;
const SUBMISSIONS_IN_FLIGHT = 4;

interface JobState {
  status: string;
  judgeMode?: JudgeMode;
  policyIds?: string[];
}

const running = (job: JobState | undefined) => isRunningStatus(job?.status);
/** An item at one attempt: a copy sent to run again (one more failed attempt) is another. */
const itemAttempt = (item: WorkItem) =>
  `${item.orgId}|${item.jobId}|${item.callId}|${item.metricId}|${item.failedAttempts ?? 0}`;

async function loadJobs(orgJobs: { orgId: string; jobId: string }[]): Promise<Map<string, JobState>> {
  const unique = [...new Map(orgJobs.map((j) => [keys.job(j.orgId, j.jobId).pk, j])).values()];
  const found = await batchGet(
    unique.map((j) => keys.job(j.orgId, j.jobId)),
    { projection: ["pk", "status", "judgeMode", "policyIds"], consistent: true },
  );
  return new Map(found.map((job) => [String(job.pk), job as unknown as JobState]));
}

/**
 * Items of redelivered messages that need no new request: recorded already, or listed at
 * the same attempt in an open submission of their job (a submitter died after writing it).
 */
async function alreadyHandled(redelivered: WorkItem[]): Promise<Set<string>> {
  const handled = new Set<string>();
  if (redelivered.length === 0) return handled;
  const isRecorded = await recordedItems(redelivered);
  for (const item of redelivered) if (isRecorded(item)) handled.add(itemAttempt(item));
  const jobs = [...new Map(redelivered.map((i) => [`${i.orgId}|${i.jobId}`, i])).values()];
  for (const { orgId, jobId } of jobs) {
    const open = (await listJobSubmissions(orgId, jobId)).filter((s) => s.status !== "COLLECTED");
    for (const item of open.flatMap((s) => itemsOf(s))) handled.add(itemAttempt(item));
  }
  return handled;
}

/** A job's items as requests: a grouped job's metrics of one call that share a model together. */
function unitsOf(items: WorkItem[], judgeMode: JudgeMode | undefined, definitions: Map<string, MetricDefinition>) {
  const keyOf = (item: WorkItem) => {
    const definition = definitions.get(`${item.metricId}@${item.metricVersion}`);
    const key = definition && judgeMode === "grouped" ? groupingKey(definition) : undefined;
    return key === undefined ? undefined : `${item.callId}|${key}`;
  };
  return judgingUnits(items, keyOf).map(
    (unit): SubmissionUnit => ({
      callId: unit[0]?.callId ?? "",
      metrics: unit.map((item) => ({
        id: item.metricId,
        version: item.metricVersion,
        ...(item.failedAttempts ? { failedAttempts: item.failedAttempts } : {}),
      })),
    }),
  );
}

/** Hands a batch of queued items to the provider: one submission per job (more when large). */
export async function submitBatchItems(messages: QueueMessage<WorkItem>[], deps: LlmBatchDeps): Promise<Redeliver> {
  const items = messages.map((m) => m.body);
  const [jobs, handled] = await Promise.all([
    loadJobs(items),
    alreadyHandled(messages.filter((m) => m.receiveCount > 1).map((m) => m.body)),
  ]);
  const live = items.filter(
    (item) => running(jobs.get(keys.job(item.orgId, item.jobId).pk)) && !handled.has(itemAttempt(item)),
  );
  for (const [, jobItems] of Map.groupBy(live, (item) => `${item.orgId}|${item.jobId}`)) {
    const [first] = jobItems;
    if (!first) continue;
    const definitions = await getMetricVersions(
      first.orgId,
      jobItems.map((i) => ({ metricId: i.metricId, version: i.metricVersion })),
    );
    const job = jobs.get(keys.job(first.orgId, first.jobId).pk);
    for (const units of chunkUnits(unitsOf(jobItems, job?.judgeMode, definitions))) {
      const submission: LlmSubmission = {
        orgId: first.orgId,
        jobId: first.jobId,
        id: newSubmissionId(),
        status: "CREATING",
        units,
        itemCount: units.reduce((sum, unit) => sum + unit.metrics.length, 0),
        createdAt: new Date(deps.now()).toISOString(),
      };
      // Written first: from here on, the submission owns its items whatever happens to this invocation.
      await putSubmission(submission);
      await createProviderBatch(submission, deps);
    }
  }
  return [];
}

/** The submission's items as work items. */
const itemsOf = (s: LlmSubmission, units: SubmissionUnit[] = s.units): WorkItem[] =>
  units.flatMap((unit) =>
    unit.metrics.map((m) => ({
      orgId: s.orgId,
      jobId: s.jobId,
      callId: unit.callId,
      metricId: m.id,
      metricVersion: m.version,
      ...(m.failedAttempts ? { failedAttempts: m.failedAttempts } : {}),
    })),
  );

interface Sources {
  calls: Map<string, Call | undefined>;
  definitions: Map<string, MetricDefinition>;
}

async function loadSources(s: LlmSubmission): Promise<Sources> {
  const callIds = [...new Set(s.units.map((u) => u.callId))];
  const [calls, definitions] = await Promise.all([
    mapLimit(callIds, 8, (callId) => getCall(s.orgId, callId)),
    getMetricVersions(
      s.orgId,
      s.units.flatMap((u) => u.metrics.map((m) => ({ metricId: m.id, version: m.version }))),
    ),
  ]);
  return { calls: new Map(callIds.map((id, i) => [id, calls[i]])), definitions };
}

/** The unit's call and definitions, or why it cannot be judged. */
function unitSources(unit: SubmissionUnit, sources: Sources) {
  const call = sources.calls.get(unit.callId);
  if (!call) return { missing: `Call ${unit.callId} not found` };
  const definitions: MetricDefinition[] = [];
  for (const metric of unit.metrics) {
    const definition = sources.definitions.get(`${metric.id}@${metric.version}`);
    if (!definition) return { missing: `Metric ${metric.id} version ${metric.version} not found` };
    definitions.push(definition);
  }
  return { call, definitions };
}

/** Records results; throws when some could not be written, for the caller's next run to try again. */
async function recordAll(results: ItemResult[], deps: LlmBatchDeps): Promise<Map<string, RecordOutcome>> {
  if (results.length === 0) return new Map();
  const outcomes = await deps.record(results);
  const lost = [...outcomes.values()].filter((outcome) => outcome === "not-recorded").length;
  if (lost > 0) throw new Error(`${lost} of ${results.length} results could not be recorded`);
  return outcomes;
}

const errorResults = (s: LlmSubmission, units: SubmissionUnit[], reason: string, policyIds?: string[]) =>
  itemsOf(s, units).map(
    (item): ItemResult => ({
      messageId: `${s.id}:${item.callId}:${item.metricId}`,
      item,
      value: itemErrorValue(item, reason, { policyIds }),
    }),
  );

/**
 * Creates the submission's provider batch and records its id. When the API refuses the
 * batch, it was not created: the submission is deleted and its items run again (or, for a
 * rejected key or an unbillable account, are recorded as ERROR). When the answer is lost
 * (timeout, connection), the submission stays for the collector.
 */
async function createProviderBatch(s: LlmSubmission, deps: LlmBatchDeps): Promise<void> {
  const sources = await loadSources(s);
  const { requests, unjudgeable } = requestsOf(s, sources, deps);
  await recordAll(unjudgeable, deps);
  if (requests.length === 0) return closeSubmission(s);
  let batchId: string;
  try {
    batchId = (await (await deps.client()).messages.batches.create({ requests })).id;
  } catch (error) {
    if (!(error instanceof Anthropic.APIError) || error.status === undefined) {
      logger.warn("Batch creation answer lost; the collector finishes the submission", { error: error as Error });
      return;
    }
    await refused(s, error, deps);
    return;
  }
  await markSubmitted(s, batchId);
  logger.info("Submitted a message batch", { jobId: s.jobId, submissionId: s.id, batchId, items: s.itemCount });
}

/** The submission's requests, and ERROR results for units whose call or metric is gone. */
function requestsOf(s: LlmSubmission, sources: Sources, deps: LlmBatchDeps) {
  const requests: Anthropic.Messages.BatchCreateParams.Request[] = [];
  const unjudgeable: ItemResult[] = [];
  for (const [index, unit] of s.units.entries()) {
    const found = unitSources(unit, sources);
    if ("missing" in found) {
      unjudgeable.push(...errorResults(s, [unit], found.missing ?? "not found"));
      continue;
    }
    const { request } = judgeRequestFor(found.definitions, found.call, deps.judge);
    requests.push({ custom_id: customIdOf(s.id, index), params: request });
  }
  return { requests, unjudgeable };
}

/** Clock skew allowed between our clock and the provider's when matching a batch to a submission. */
const CLOCK_SKEW_MS = 5 * 60_000;

/**
 * The provider batch a submitter created for `s` before it died, if any: created around the
 * time the submission was written (its `created_at` within the submitter's lifetime), with as
 * many requests as the submission units, and no submission's yet. Its results are checked
 * against the submission's custom ids when collected.
 */
async function findOrphanBatch(s: LlmSubmission, client: BatchesClient): Promise<string | undefined> {
  const written = Date.parse(s.createdAt);
  const from = written - CLOCK_SKEW_MS;
  const until = written + config().llmBatchStaleSeconds * 1000 + CLOCK_SKEW_MS;
  for await (const batch of client.messages.batches.list({ limit: 100 })) {
    const created = Date.parse(batch.created_at);
    // Newest first: once before the window, no older batch can match.
    if (created < from) return undefined;
    const counts = batch.request_counts;
    const requests = counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired;
    if (created <= until && requests === s.units.length && !(await isKnownProviderBatch(batch.id))) return batch.id;
  }
  return undefined;
}

/** The API refused to create the batch: the items run again, or stop when retrying cannot help. */
async function refused(s: LlmSubmission, error: InstanceType<typeof Anthropic.APIError>, deps: LlmBatchDeps) {
  const status = error.status ?? 0;
  const message = `Anthropic refused the message batch (${status}): ${error.message}`;
  logger.warn("Message batch refused", { jobId: s.jobId, submissionId: s.id, status });
  // Deleted first: the items sent back must not read as this submission's when they return.
  await deleteSubmission(s);
  if (status === 401 || status === 403 || /credit balance/i.test(error.message)) {
    await deps.blockLlmCalls(s.orgId, s.jobId, message).catch(() => undefined);
    await recordAll(errorResults(s, s.units, message), deps);
  } else if (status === 429 || status === 529) {
    publishCount(ALARMED_COUNTS.llmRateLimited, 1);
    // Throttled: the items wait and come back without spending an attempt.
    await deps.resend(itemsOf(s), retryDelaySeconds(1));
  } else {
    await retryOrFail(s, itemsOf(s), message, deps);
  }
}

/** Items that failed an attempt: sent to run again, or recorded as ERROR once their attempts are spent. */
async function retryOrFail(
  s: LlmSubmission,
  items: WorkItem[],
  reason: string,
  deps: LlmBatchDeps,
  policyIds?: string[],
) {
  const again: WorkItem[] = [];
  const spent: ItemResult[] = [];
  for (const item of items) {
    const failedAttempts = (item.failedAttempts ?? 0) + 1;
    if (failedAttempts >= config().workMaxReceiveCount) {
      spent.push({
        messageId: `${s.id}:${item.callId}:${item.metricId}`,
        item,
        value: itemErrorValue(item, `Gave up after ${failedAttempts} attempts: ${reason}`, { policyIds }),
      });
    } else again.push({ ...item, failedAttempts, lastError: reason.slice(0, 500) });
  }
  await recordAll(spent, deps);
  const attempts = Math.max(1, ...again.map((item) => item.failedAttempts ?? 1));
  if (again.length > 0) await deps.resend(again, retryDelaySeconds(attempts));
}

export interface CollectReport {
  open: number;
  collected: number;
  failures: number;
}

/** One scheduled run: every open submission moved on as far as it can go. */
export async function collectBatches(deps: LlmBatchDeps): Promise<CollectReport> {
  const open = await listOpenSubmissions();
  const report: CollectReport = { open: open.length, collected: 0, failures: 0 };
  await mapLimit(open, SUBMISSIONS_IN_FLIGHT, async (s) => {
    try {
      if (await advance(s, deps)) report.collected++;
    } catch (error) {
      report.failures++;
      logger.error("Could not advance a message batch; the next run tries again", {
        jobId: s.jobId,
        submissionId: s.id,
        error: error as Error,
      });
    }
  });
  return report;
}

/** Moves one submission on; true when its results are all recorded. */
async function advance(s: LlmSubmission, deps: LlmBatchDeps): Promise<boolean> {
  const client = await deps.client();
  if (s.status === "CREATING" || !s.providerBatchId) {
    if (deps.now() - Date.parse(s.createdAt) < config().llmBatchStaleSeconds * 1000) return false;
    // A submitter died after writing the submission: adopt the batch it created, or create it now.
    const orphan = await findOrphanBatch(s, client);
    if (orphan && (await markSubmitted(s, orphan))) {
      logger.warn("Adopted a message batch its submitter left unrecorded", { submissionId: s.id, batchId: orphan });
    } else if (!orphan) await createProviderBatch(s, deps);
    return false;
  }
  const batch = await client.messages.batches.retrieve(s.providerBatchId);
  if (batch.processing_status === "in_progress" && !running((await loadJobs([s])).get(keys.job(s.orgId, s.jobId).pk))) {
    // The job was canceled (or ended otherwise): stop paying for its requests.
    await client.messages.batches.cancel(s.providerBatchId);
    logger.info("Canceled the message batch of a stopped job", { jobId: s.jobId, batchId: s.providerBatchId });
    return false;
  }
  if (batch.processing_status !== "ended") return false;
  await collectResults(s, s.providerBatchId, client, deps);
  await closeSubmission(s);
  return true;
}

/** Records an ended batch's results a chunk at a time, resuming after the checkpoint. */
async function collectResults(s: LlmSubmission, batchId: string, client: BatchesClient, deps: LlmBatchDeps) {
  const [sources, jobs] = await Promise.all([loadSources(s), loadJobs([s])]);
  const job = jobs.get(keys.job(s.orgId, s.jobId).pk);
  let line = 0;
  let chunk: Anthropic.Messages.MessageBatchIndividualResponse[] = [];
  const flush = async () => {
    await recordChunk(s, chunk, sources, job, deps);
    await saveCheckpoint(s, line);
    chunk = [];
  };
  for await (const result of await client.messages.batches.results(batchId)) {
    line++;
    if (line <= (s.collectedLines ?? 0)) continue;
    chunk.push(result);
    if (chunk.length >= RESULT_LINES_PER_CHUNK) await flush();
  }
  if (chunk.length > 0) await flush();
}

interface LineVerdict {
  results: ItemResult[];
  retries: { items: WorkItem[]; reason: string }[];
  /** Invalid answers: billed, though their items run again. */
  billed: BilledAttempt[];
}

/** What one result line means for its items: values to record, or items to run again and why. */
function readLine(
  s: LlmSubmission,
  { custom_id, result }: Anthropic.Messages.MessageBatchIndividualResponse,
  sources: Sources,
  job: JobState | undefined,
): LineVerdict {
  const verdict: LineVerdict = { results: [], retries: [], billed: [] };
  const unit = custom_id.startsWith(`${s.id}-`) ? s.units[Number(custom_id.slice(s.id.length + 1))] : undefined;
  if (!unit) {
    logger.error("A batch result names no request of its submission", { submissionId: s.id, custom_id });
    return verdict;
  }
  const items = itemsOf(s, [unit]);
  const found = unitSources(unit, sources);
  if ("missing" in found) {
    verdict.results.push(...errorResults(s, [unit], found.missing ?? "not found", job?.policyIds));
    return verdict;
  }
  /** Names the answer to question i, the same however often the results are read. */
  const answerId = (i: number) => `${s.id}:${custom_id}:${unit.metrics[i]?.id}`;
  const resultFor = (i: number, outcome: EvaluationOutcome) =>
    itemResultOf(answerId(i), items[i] as WorkItem, outcome, {
      policyIds: job?.policyIds,
      call: found.call,
      definition: found.definitions[i],
    });
  if (result.type === "succeeded") {
    const answers = interpretBatchAnswer(found.definitions, found.call, result.message, result.message.model);
    for (const [i, answer] of answers.entries()) {
      if (answer.ok) {
        verdict.results.push(resultFor(i, answer.outcome));
        continue;
      }
      verdict.retries.push({
        items: [items[i] as WorkItem],
        reason: `Invalid answer in a message batch: ${answer.problem}`,
      });
      verdict.billed.push({ attemptId: answerId(i), ...answer.billed });
    }
  } else if (result.type === "errored") {
    const error = (result.error as { error?: { type?: string; message?: string } }).error;
    const reason = `Anthropic answered the batch request with ${error?.type ?? "an error"}: ${error?.message ?? ""}`;
    // The request itself is wrong: asking again cannot help.
    if (error?.type === "invalid_request_error") {
      verdict.results.push(
        ...items.map((_, i) => resultFor(i, { captureStatus: "ERROR", context: "CALL", errorMessage: reason })),
      );
    } else verdict.retries.push({ items, reason });
  } else {
    verdict.retries.push({ items, reason: `The message batch request was ${result.type} before it was processed` });
  }
  return verdict;
}

/**
 * Records a chunk of result lines, adds the answers no value carries to the job's usage, and
 * sends the items that must run again back to the batch queue.
 */
async function recordChunk(
  s: LlmSubmission,
  lines: Anthropic.Messages.MessageBatchIndividualResponse[],
  sources: Sources,
  job: JobState | undefined,
  deps: LlmBatchDeps,
) {
  const verdicts = lines.map((line) => readLine(s, line, sources, job));
  const results = verdicts.flatMap((v) => v.results);
  const outcomes = await recordAll(results, deps);
  publishEvaluationMetrics(results.filter((r) => outcomes.get(r.messageId) === "recorded").map((r) => r.value));
  // Results of a job that ended meanwhile were billed too (failed writes are read again instead).
  const unrecorded = await unrecordedBilled(results, outcomes, { failedWrites: false });
  const billed: BilledAttempt[] = [
    ...verdicts.flatMap((v) => v.billed),
    ...unrecorded.map(({ messageId, value }) => ({
      attemptId: messageId,
      usage: value.usage,
      estimatedCostUsd: value.estimatedCostUsd,
    })),
  ];
  await deps.addBilledAttempts(s.orgId, s.jobId, billed);
  publishUnrecordedSpend(billed);
  // A stopped job's items need nothing more (a canceled job's batch ends `canceled`).
  if (!running(job)) return;
  const byReason = Map.groupBy(
    verdicts.flatMap((v) => v.retries),
    (retry) => retry.reason,
  );
  for (const [reason, retries] of byReason) {
    await retryOrFail(
      s,
      retries.flatMap((retry) => retry.items),
      reason,
      deps,
      job?.policyIds,
    );
  }
}
