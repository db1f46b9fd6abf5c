/**
 * The evaluator worker's logic (DESIGN §3.3–3.4) for one SQS batch: skip items of jobs
 * that stopped, load each call and definition once, evaluate, and record results
 * exactly once. Failures go back to the queue with a backoff delay; on the last allowed
 * receive an item is recorded as ERROR so its job can still finish.
 */
import { ChangeMessageVisibilityBatchCommand } from "@aws-sdk/client-sqs";
import type { SQSBatchResponse, SQSRecord } from "aws-lambda";
import { labelsOf, numericValue } from "../analytics/rollup.ts";
import { sqs } from "../aws.ts";
import { config, requireQueueUrl } from "../config.ts";
import { keys } from "../keys.ts";
import { logger } from "../logger.ts";
import { publishEvaluationMetrics } from "../observability.ts";
import type { Call } from "../schemas/call.ts";
import { type MetricValue, type WorkItem, workItemSchema } from "../schemas/job.ts";
import type { MetricDefinition } from "../schemas/metric.ts";
import { batchGet } from "../store/batch-get.ts";
import { getCall } from "../store/calls.ts";
import { blockJobLlmCalls } from "../store/jobs.ts";
import { getMetricVersions } from "../store/metrics.ts";
import { LlmCallsBlockedError, RetryableEvaluationError } from "./evaluation-errors.ts";
import { type EvaluateItem, type EvaluationOutcome, evaluateByCalculationType } from "./evaluators.ts";
import { type ItemResult, recordResults } from "./record.ts";

export interface EvaluatorDeps {
  evaluate: EvaluateItem;
  /** Returns failed messages to the queue after a delay (seconds). */
  delayRetries: (retries: { receiptHandle: string; delaySeconds: number }[]) => Promise<void>;
  /** Milliseconds left in the invocation (Lambda context); unset means no deadline. */
  remainingTimeMs?: () => number;
  /** Records on the job that its LLM calls are futile, so other workers stop making them. */
  blockLlmCalls: (orgId: string, jobId: string, reason: string) => Promise<void>;
}

interface ParsedRecord {
  record: SQSRecord;
  item: WorkItem;
  receiveCount: number;
}

const DEADLINE_MARGIN_MS = 10_000;

export function retryDelaySeconds(receiveCount: number, retryAfterSeconds?: number): number {
  const { retryBaseDelaySeconds, retryMaxDelaySeconds } = config();
  const exponential = retryBaseDelaySeconds * 2 ** Math.max(0, receiveCount - 1);
  // Full jitter spreads a burst of retries instead of stampeding back together.
  const jittered = exponential * (0.5 + Math.random() / 2);
  return Math.round(Math.min(retryMaxDelaySeconds, Math.max(jittered, retryAfterSeconds ?? 0)));
}

export const changeVisibility: EvaluatorDeps["delayRetries"] = async (retries) => {
  for (let i = 0; i < retries.length; i += 10) {
    const entries = retries.slice(i, i + 10).map((retry, index) => ({
      Id: String(index),
      ReceiptHandle: retry.receiptHandle,
      VisibilityTimeout: retry.delaySeconds,
    }));
    await sqs().send(new ChangeMessageVisibilityBatchCommand({ QueueUrl: requireQueueUrl("work"), Entries: entries }));
  }
};

export const defaultEvaluatorDeps: EvaluatorDeps = {
  evaluate: evaluateByCalculationType,
  delayRetries: changeVisibility,
  blockLlmCalls: blockJobLlmCalls,
};

function parseRecord(record: SQSRecord): ParsedRecord | undefined {
  let body: unknown;
  try {
    body = JSON.parse(record.body);
  } catch {
    return undefined;
  }
  const parsed = workItemSchema.safeParse(body);
  if (!parsed.success) return undefined;
  return { record, item: parsed.data, receiveCount: Number(record.attributes.ApproximateReceiveCount ?? "1") };
}

/** Running jobs by key, with the reason their LLM calls were stopped, if they were. */
interface RunningJob {
  llmBlockedReason?: string;
  policyIds?: string[];
}

async function runningJobs(items: WorkItem[]): Promise<Map<string, RunningJob>> {
  const jobKeys = [...new Map(items.map((i) => [`${i.orgId}|${i.jobId}`, keys.job(i.orgId, i.jobId)])).values()];
  const jobs = await batchGet(jobKeys, ["pk", "status", "llmBlockedReason", "policyIds"]);
  return new Map(
    jobs
      .filter((job) => job.status === "PENDING" || job.status === "PROCESSING")
      .map((job): [string, RunningJob] => [
        String(job.pk),
        {
          llmBlockedReason: job.llmBlockedReason as string | undefined,
          policyIds: job.policyIds as string[] | undefined,
        },
      ]),
  );
}

async function loadCalls(items: WorkItem[]): Promise<Map<string, Call | undefined>> {
  const callKeys = [...new Map(items.map((i) => [`${i.orgId}|${i.callId}`, i])).values()];
  const calls = await Promise.all(callKeys.map((i) => getCall(i.orgId, i.callId)));
  return new Map(callKeys.map((i, index) => [`${i.orgId}|${i.callId}`, calls[index]]));
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

function resultOf(
  record: SQSRecord,
  item: WorkItem,
  outcome: EvaluationOutcome,
  policyIds?: string[],
  source?: { call?: Call; definition?: MetricDefinition },
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
  const { call, definition } = source ?? {};
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
        }
      : undefined;
  return { messageId: record.messageId, item, value, ...(rollup ? { rollup } : {}) };
}

export async function processWorkBatch(records: SQSRecord[], deps: EvaluatorDeps): Promise<SQSBatchResponse> {
  const failures = new Set<string>();
  const retries: { receiptHandle: string; delaySeconds: number }[] = [];
  const parsed: ParsedRecord[] = [];
  for (const record of records) {
    const result = parseRecord(record);
    if (result) parsed.push(result);
    else {
      // Not an item we can attribute to a job: let redrive move it to the DLQ, where it alarms.
      logger.error("Malformed work message", { messageId: record.messageId });
      failures.add(record.messageId);
    }
  }
  const items = parsed.map((p) => p.item);
  // The jobs' status, calls and definitions in parallel: a stopped job's items are rare, and
  // reading their calls too costs less than a round trip more for every batch.
  const [running, calls, definitions] =
    items.length > 0
      ? await Promise.all([runningJobs(items), loadCalls(items), loadDefinitions(items)])
      : [new Map<string, RunningJob>(), new Map<string, Call | undefined>(), new Map<string, MetricDefinition>()];
  const active = parsed.filter((p) => running.has(keys.job(p.item.orgId, p.item.jobId).pk));

  const lastAttempt = config().workMaxReceiveCount;
  const stopLlmCalls = async (item: WorkItem, reason: string) => {
    const job = running.get(keys.job(item.orgId, item.jobId).pk);
    if (job?.llmBlockedReason) return;
    if (job) job.llmBlockedReason = reason;
    logger.error("LLM calls stopped for job", { jobId: item.jobId, reason });
    await deps
      .blockLlmCalls(item.orgId, item.jobId, reason)
      .catch((error) => logger.warn("Could not mark the job's LLM calls as stopped", { error: error as Error }));
  };
  const results: ItemResult[] = [];
  // One item at a time, so in-flight LLM calls never exceed the event source's maximum
  // concurrency (the configured cap), and a call's items run back to back to share its prompt
  // cache even when the batch interleaves them.
  const ordered = [...Map.groupBy(active, (p) => `${p.item.orgId}|${p.item.callId}`).values()].flat();
  for (const [position, { record, item, receiveCount }] of ordered.entries()) {
    if (deps.remainingTimeMs && deps.remainingTimeMs() < config().anthropicTimeoutMs + DEADLINE_MARGIN_MS) {
      // Not enough time left for another LLM call: hand the rest back instead of timing out mid-batch.
      for (const rest of ordered.slice(position)) {
        failures.add(rest.record.messageId);
        retries.push({ receiptHandle: rest.record.receiptHandle, delaySeconds: 0 });
      }
      break;
    }
    const call = calls.get(`${item.orgId}|${item.callId}`);
    const definition = definitions.get(`${item.orgId}|${item.metricId}@${item.metricVersion}`);
    let outcome: EvaluationOutcome;
    try {
      if (!call) outcome = { captureStatus: "ERROR", context: "CALL", errorMessage: `Call ${item.callId} not found` };
      else if (!definition) {
        outcome = {
          captureStatus: "ERROR",
          context: "CALL",
          errorMessage: `Metric ${item.metricId} version ${item.metricVersion} not found`,
        };
      } else {
        const job = running.get(keys.job(item.orgId, item.jobId).pk);
        outcome =
          definition.calculationType === "LLM_JUDGE" && job?.llmBlockedReason
            ? {
                captureStatus: "ERROR",
                context: "CALL",
                errorMessage: `LLM calls stopped for this job: ${job.llmBlockedReason}`,
              }
            : await deps.evaluate(definition, call);
      }
    } catch (error) {
      if (error instanceof LlmCallsBlockedError) {
        outcome = { captureStatus: "ERROR", context: "CALL", errorMessage: error.message };
        await stopLlmCalls(item, error.message);
        results.push(
          resultOf(record, item, outcome, running.get(keys.job(item.orgId, item.jobId).pk)?.policyIds, {
            call,
            definition,
          }),
        );
        continue;
      }
      const message = error instanceof Error ? error.message : String(error);
      if (receiveCount < lastAttempt) {
        const retryAfter = error instanceof RetryableEvaluationError ? error.retryAfterSeconds : undefined;
        logger.warn("Item failed; will retry", { messageId: record.messageId, receiveCount, error: message });
        failures.add(record.messageId);
        retries.push({
          receiptHandle: record.receiptHandle,
          delaySeconds: retryDelaySeconds(receiveCount, retryAfter),
        });
        continue;
      }
      outcome = {
        captureStatus: "ERROR",
        context: "CALL",
        errorMessage: `Gave up after ${receiveCount} attempts: ${message}`,
      };
    }
    results.push(
      resultOf(record, item, outcome, running.get(keys.job(item.orgId, item.jobId).pk)?.policyIds, {
        call,
        definition,
      }),
    );
  }

  const outcomes = await recordResults(results);
  for (const [messageId, outcome] of outcomes) {
    if (outcome === "not-recorded") failures.add(messageId);
  }
  publishEvaluationMetrics(results.filter((r) => outcomes.get(r.messageId) === "recorded").map((r) => r.value));
  if (retries.length > 0) {
    // Best effort: if the delay cannot be set, the message still returns after the queue's timeout.
    await deps
      .delayRetries(retries)
      .catch((error) => logger.warn("Could not delay retries", { error: error as Error }));
  }
  return { batchItemFailures: [...failures].map((itemIdentifier) => ({ itemIdentifier })) };
}
