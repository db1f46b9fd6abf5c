/**
 * The evaluator worker's logic (DESIGN §3.3–3.4) for one SQS batch: skip items of jobs
 * that stopped, load each call and definition once, evaluate, and record results
 * exactly once. Failures go back to the queue with a backoff delay; on the last allowed
 * receive an item is recorded as ERROR so its job can still finish.
 */
import { ChangeMessageVisibilityBatchCommand } from "@aws-sdk/client-sqs";
import type { SQSBatchResponse, SQSRecord } from "aws-lambda";
import { sqs } from "../aws.ts";
import { config, requireQueueUrl } from "../config.ts";
import { keys } from "../keys.ts";
import { logger } from "../logger.ts";
import type { Call } from "../schemas/call.ts";
import { type MetricValue, type WorkItem, workItemSchema } from "../schemas/job.ts";
import type { MetricDefinition } from "../schemas/metric.ts";
import { batchGet } from "../store/batch-get.ts";
import { getCall } from "../store/calls.ts";
import { getMetricVersions } from "../store/metrics.ts";
import {
  type EvaluateItem,
  type EvaluationOutcome,
  evaluateByCalculationType,
  RetryableEvaluationError,
} from "./evaluators.ts";
import { type ItemResult, recordResults } from "./record.ts";

export interface EvaluatorDeps {
  evaluate: EvaluateItem;
  /** Returns failed messages to the queue after a delay (seconds). */
  delayRetries: (retries: { receiptHandle: string; delaySeconds: number }[]) => Promise<void>;
}

interface ParsedRecord {
  record: SQSRecord;
  item: WorkItem;
  receiveCount: number;
}

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

async function runningJobIds(items: WorkItem[]): Promise<Set<string>> {
  const jobKeys = [...new Map(items.map((i) => [`${i.orgId}|${i.jobId}`, keys.job(i.orgId, i.jobId)])).values()];
  const jobs = await batchGet(jobKeys, ["pk", "status"]);
  return new Set(
    jobs.filter((job) => job.status === "PENDING" || job.status === "PROCESSING").map((job) => String(job.pk)),
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
  const running = items.length > 0 ? await runningJobIds(items) : new Set<string>();
  const active = parsed.filter((p) => running.has(keys.job(p.item.orgId, p.item.jobId).pk));
  const [calls, definitions] = await Promise.all([
    loadCalls(active.map((p) => p.item)),
    loadDefinitions(active.map((p) => p.item)),
  ]);

  const lastAttempt = config().workMaxReceiveCount;
  const results: ItemResult[] = [];
  // Items of one call run one after another (they share its prompt cache); calls run in parallel.
  const byCall = Map.groupBy(active, (p) => `${p.item.orgId}|${p.item.callId}`);
  await Promise.all(
    [...byCall.values()].map(async (callItems) => {
      for (const { record, item, receiveCount } of callItems) {
        const call = calls.get(`${item.orgId}|${item.callId}`);
        const definition = definitions.get(`${item.orgId}|${item.metricId}@${item.metricVersion}`);
        let outcome: EvaluationOutcome;
        try {
          if (!call)
            outcome = { captureStatus: "ERROR", context: "CALL", errorMessage: `Call ${item.callId} not found` };
          else if (!definition) {
            outcome = {
              captureStatus: "ERROR",
              context: "CALL",
              errorMessage: `Metric ${item.metricId} version ${item.metricVersion} not found`,
            };
          } else outcome = await deps.evaluate(definition, call);
        } catch (error) {
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
        const value: MetricValue = {
          ...outcome,
          jobId: item.jobId,
          callId: item.callId,
          metricDefinitionId: item.metricId,
          metricVersion: item.metricVersion,
          computedAt: new Date().toISOString(),
        };
        results.push({ messageId: record.messageId, item, value });
      }
    }),
  );

  const outcomes = await recordResults(results);
  for (const [messageId, outcome] of outcomes) {
    if (outcome === "not-recorded") failures.add(messageId);
  }
  if (retries.length > 0) {
    // Best effort: if the delay cannot be set, the message still returns after the queue's timeout.
    await deps
      .delayRetries(retries)
      .catch((error) => logger.warn("Could not delay retries", { error: error as Error }));
  }
  return { batchItemFailures: [...failures].map((itemIdentifier) => ({ itemIdentifier })) };
}
