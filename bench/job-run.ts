/** One job through the whole pipeline, measured: times, requests counted, CPU, and its counts checked. */
import { GetCommand, QueryCommand } from "@aws-sdk/lib-dynamodb";
import { DELTA_SHARDS, pendingDeltasPartition } from "../shared/analytics/deltas.ts";
import { sleep } from "../shared/concurrency.ts";
import { keys } from "../shared/keys.ts";
import type { JudgeMode, LlmMode } from "../shared/schemas/job.ts";
import type { MetricDefinition } from "../shared/schemas/metric.ts";
import { BENCH_TABLE, type PipelineHarness } from "./harness.ts";
import { fmt, log } from "./report.ts";
import { type MeterCounts, messagesSentTo } from "./request-meter.ts";

/** The job item as stored (counters and summed usage are top-level attributes). */
export interface JobItem {
  status: string;
  completedItems: number;
  failedItems: number;
  createdAt: string;
  completedAt: string;
  usageInputTokens: number;
  usageOutputTokens: number;
  usageCacheCreationInputTokens: number;
  usageCacheReadInputTokens: number;
  estimatedCostUsd: number;
}

export interface JobRun {
  items: number;
  acceptMs: number;
  /** Job creation → last item message accepted by SQS. */
  enqueueMs: number;
  /** Job creation → COMPLETED. */
  totalMs: number;
  /** Counters reached the total → COMPLETED (observed by polling every 20 ms). */
  finalizeMs: number;
  /** COMPLETED → every rollup delta applied (analytics up to date). */
  rollupLagMs: number;
  jobId: string;
  job: JobItem;
  /** Value items stored for the job, counted by `countProblems`. */
  valuesStored?: number;
  dynamo: MeterCounts;
  sqs: MeterCounts;
  invocations: Record<string, number>;
  handlerMs: Record<string, number>;
  /** CPU time per item, job creation → every rollup delta applied. */
  cpuMsPerItem: { node: number; engine: number };
  /** The whole measurement: job creation → every rollup delta applied. */
  wallMs: number;
}

/** Creates a job over every call × metric through the API and measures it until analytics are up to date. */
export async function runJob(
  harness: PipelineHarness,
  callIds: string[],
  metrics: MetricDefinition[],
  options: { judgeMode?: JudgeMode; llmMode?: LlmMode } = {},
): Promise<JobRun> {
  const { meters, times } = harness;
  meters.dynamo.reset();
  meters.sqs.reset();
  for (const key of Object.keys(times.ms)) times.ms[key] = 0;
  for (const key of Object.keys(times.invocations)) times.invocations[key] = 0;
  const items = callIds.length * metrics.length;

  const cpuAtStart = await harness.cpuMs();
  const started = performance.now();
  const created = await harness.api<{ data: { id: string } }>("POST", "/v1/metric/collection-jobs", {
    callIds,
    metrics: metrics.map((m) => ({ id: m.id })),
    ...options,
  });
  const acceptMs = performance.now() - started;
  if (created.status !== 201) throw new Error(`job creation failed: ${created.status} ${JSON.stringify(created.body)}`);
  const jobId = created.body.data.id;

  const deadline = Date.now() + 20 * 60_000;
  const watched = await watchJob(harness, jobId, items, started, deadline);
  const finishedAt = performance.now();
  const { job } = watched;
  if (job?.status !== "COMPLETED") throw new Error(`job ${jobId} did not complete: ${JSON.stringify(job)}`);
  // Rollups trail the values (rollup deltas, applied from the stream): their writes belong
  // to the job's cost, so the counts are taken once every delta is applied.
  while ((await pendingRollupDeltas(harness)) > 0) {
    if (Date.now() > deadline) throw new Error(`rollup deltas of job ${jobId} were not applied`);
    await sleep(50);
  }
  const rollupLagMs = performance.now() - finishedAt;
  const cpuAtEnd = await harness.cpuMs();
  return {
    jobId,
    items,
    acceptMs,
    enqueueMs: watched.enqueueMs,
    totalMs: Date.parse(job.completedAt) - Date.parse(job.createdAt),
    finalizeMs: finishedAt - watched.countersDoneAt,
    rollupLagMs,
    job,
    dynamo: meters.dynamo.counts(),
    sqs: meters.sqs.counts(),
    invocations: { ...times.invocations },
    handlerMs: { ...times.ms },
    cpuMsPerItem: {
      node: (cpuAtEnd.node - cpuAtStart.node) / items,
      engine: (cpuAtEnd.engine - cpuAtStart.engine) / items,
    },
    wallMs: performance.now() - started,
  };
}

/** Polls the job every 20 ms until it leaves PENDING/PROCESSING, noting when its items were enqueued and counted. */
async function watchJob(harness: PipelineHarness, jobId: string, items: number, started: number, deadline: number) {
  let enqueueMs = Number.NaN;
  let countersDoneAt = Number.NaN;
  let job: JobItem | undefined;
  let lastProgressAt = started;
  let lastProgressDone = 0;
  while (Date.now() < deadline) {
    const now = performance.now();
    const sent = harness.meters.sqs.messagesSent("-work");
    if (Number.isNaN(enqueueMs) && sent >= items) enqueueMs = now - started;
    const { Item } = await harness.observer.send(
      new GetCommand({ TableName: BENCH_TABLE, Key: keys.job(harness.orgId, jobId) }),
    );
    job = Item as JobItem | undefined;
    const done = Number(Item?.completedItems ?? 0) + Number(Item?.failedItems ?? 0);
    if (Number.isNaN(countersDoneAt) && done >= items) countersDoneAt = now;
    if (now - lastProgressAt >= 30_000) {
      // Long jobs show their pace, so a slowing engine is visible while the run goes on.
      const rate = ((done - lastProgressDone) * 1000) / (now - lastProgressAt);
      log(`    ${done.toLocaleString("en")} / ${items.toLocaleString("en")} items, ${fmt(rate, 0)} items/s`);
      lastProgressAt = now;
      lastProgressDone = done;
    }
    if (Item && !["PENDING", "PROCESSING"].includes(String(Item.status))) break;
    await sleep(20);
  }
  return { job, enqueueMs, countersDoneAt };
}

/** Rollup deltas not yet applied, read without the meters. */
async function pendingRollupDeltas(harness: PipelineHarness): Promise<number> {
  let pending = 0;
  for (let shard = 0; shard < DELTA_SHARDS; shard++) {
    const page = await harness.observer.send(
      new QueryCommand({
        TableName: BENCH_TABLE,
        IndexName: "gsi1",
        KeyConditionExpression: "gsi1pk = :shard",
        ExpressionAttributeValues: { ":shard": pendingDeltasPartition(shard) },
        Select: "COUNT",
      }),
    );
    pending += page.Count ?? 0;
  }
  return pending;
}

/**
 * Value items stored for a job, read without the meters. One COUNT query per first hex digit
 * of the call id (ids are UUIDs; one outside these ranges would show as a count error):
 * DynamoDB Local seems to resume each 1 MB page of a large partition from its start: one
 * query over the 100,000-item job's values took about 200 s, and over 30,000 values 3.7 s
 * against 0.4 s in 16 ranges.
 */
async function countStoredValues(harness: PipelineHarness, jobId: string): Promise<number> {
  const countRange = async (prefix: string) => {
    let stored = 0;
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await harness.observer.send(
        new QueryCommand({
          TableName: BENCH_TABLE,
          KeyConditionExpression: "pk = :pk AND begins_with(sk, :prefix)",
          ExpressionAttributeValues: { ":pk": keys.job(harness.orgId, jobId).pk, ":prefix": prefix },
          Select: "COUNT",
          ExclusiveStartKey: startKey,
        }),
      );
      stored += page.Count ?? 0;
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return stored;
  };
  const counts = await Promise.all([..."0123456789abcdef"].map((digit) => countRange(keys.itemResultPrefix + digit)));
  return counts.reduce((total, n) => total + n, 0);
}

/** Every item counted once and its value stored once: what the quick run fails on. Returns what is wrong. */
export async function countProblems(harness: PipelineHarness, label: string, run: JobRun): Promise<string[]> {
  const problems: string[] = [];
  const { job } = run;
  run.valuesStored = await countStoredValues(harness, run.jobId);
  if (job.completedItems !== run.items || job.failedItems !== 0 || run.valuesStored !== run.items) {
    problems.push(
      `${label}: expected ${run.items} completed items and values, got completed=${job.completedItems} failed=${job.failedItems} values=${run.valuesStored}`,
    );
  }
  const sent = messagesSentTo(run.sqs, "-work");
  if (sent !== run.items) problems.push(`${label}: ${sent} work messages sent for ${run.items} items`);
  return problems;
}
