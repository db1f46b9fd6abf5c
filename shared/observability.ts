/**
 * Business metrics as CloudWatch EMF (Powertools Metrics): items evaluated and LLM tokens,
 * which the CDK dashboard charts. Off locally and in tests (POWERTOOLS_METRICS_DISABLED).
 */
import { Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import type { MetricValue } from "./schemas/job.ts";

/**
 * The service's name on log lines and metrics, and the CloudWatch namespace of its metrics,
 * where nothing sets them (locally); deployed, both are the stack's name (infra/stack).
 */
export const SERVICE_NAME = "metric-collection";
export const METRICS_NAMESPACE = "MetricCollection";

let metrics: Metrics | undefined;

const instance = () => {
  metrics ??= new Metrics({
    namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? METRICS_NAMESPACE,
    serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? SERVICE_NAME,
  });
  return metrics;
};

/** Publishes counts and token usage of newly recorded values (not of duplicates). */
export function publishEvaluationMetrics(values: MetricValue[]): void {
  if (values.length === 0) return;
  const m = instance();
  const failed = values.filter((v) => v.captureStatus === "ERROR").length;
  const sum = (pick: (v: MetricValue) => number | undefined) => values.reduce((total, v) => total + (pick(v) ?? 0), 0);
  m.addMetric("ItemsEvaluated", MetricUnit.Count, values.length);
  m.addMetric("ItemsFailed", MetricUnit.Count, failed);
  m.addMetric(
    "InputTokens",
    MetricUnit.Count,
    sum((v) => v.usage?.inputTokens),
  );
  m.addMetric(
    "OutputTokens",
    MetricUnit.Count,
    sum((v) => v.usage?.outputTokens),
  );
  m.addMetric(
    "CacheReadTokens",
    MetricUnit.Count,
    sum((v) => v.usage?.cacheReadInputTokens),
  );
  m.addMetric(
    "CacheCreationTokens",
    MetricUnit.Count,
    sum((v) => v.usage?.cacheCreationInputTokens),
  );
  m.addMetric(
    "ThinkingTokens",
    MetricUnit.Count,
    sum((v) => v.usage?.thinkingTokens),
  );
  m.addMetric(
    LLM_SPEND_METRIC,
    MetricUnit.NoUnit,
    sum((v) => v.estimatedCostUsd),
  );
  m.publishStoredMetrics();
}

/** Names of the counts an alarm watches; the CDK stack builds its alarms from them. */
export const ALARMED_COUNTS = {
  deadLetteredItems: "DeadLetteredItems",
  malformedWorkMessages: "MalformedWorkMessages",
  jobsRepaired: "JobsRepaired",
  /** Model requests answered 429 or 529: the account's rate limits bind. */
  llmRateLimited: "LlmRateLimited",
} as const;

/** Items the shared LLM limiter sent back to the queue for later (a full schedule, not a failure). */
export const LLM_DEFERRED_ITEMS = "LlmDeferredItems";

/** The estimated LLM spend in USD: recorded values' cost and billed answers no value carries (alarmed per hour). */
export const LLM_SPEND_METRIC = "EstimatedCostUsd";

/** Spend of billed answers no recorded value carries (publishEvaluationMetrics counts the values'). */
export function publishUnrecordedSpend(billed: { estimatedCostUsd?: number }[]): void {
  const costUsd = billed.reduce((sum, attempt) => sum + (attempt.estimatedCostUsd ?? 0), 0);
  if (costUsd === 0) return;
  const m = instance();
  m.addMetric(LLM_SPEND_METRIC, MetricUnit.NoUnit, costUsd);
  m.publishStoredMetrics();
}

/** Counts of pipeline events an alarm watches (dead-lettered items, malformed messages, repairs). */
export function publishCount(name: string, count: number): void {
  if (count === 0) return;
  const m = instance();
  m.addMetric(name, MetricUnit.Count, count);
  m.publishStoredMetrics();
}

/** Repairs made by the job reconciler: any at all means some delivery was lost (alarmed). */
export function publishReconcilerMetrics(repairs: { jobs: number; itemsResent: number; itemsExpired: number }): void {
  const m = instance();
  m.addMetric(ALARMED_COUNTS.jobsRepaired, MetricUnit.Count, repairs.jobs);
  m.addMetric("ItemsResent", MetricUnit.Count, repairs.itemsResent);
  m.addMetric("ItemsExpired", MetricUnit.Count, repairs.itemsExpired);
  m.publishStoredMetrics();
}
