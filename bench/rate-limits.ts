/**
 * Figure 8: the pipeline under the Anthropic account's rate limits (issue 22), with the fake
 * server enforcing them (a tier-4-like account: requests, input and output tokens per minute)
 * at a realistic model latency.
 *
 * - Throughput ÷ the rate the limits allow, on one large job. The allowed rate is what the
 *   binding limit permits for this workload: each limit ÷ what an item uses of it (requests,
 *   uncached input tokens, output tokens, from the job's recorded usage).
 * - Items ended in ERROR, and the share of requests answered 429.
 * - Lambda seconds per item (evaluator handler time ÷ items) against the model latency.
 * - Noisy neighbour: a 20-item job of a second organization, alone, then while the first
 *   organization's large job runs (that job is canceled once the small one ends).
 */

import type { RateLimits } from "../infra/local/fake-rate-limits.ts";
import { sleep } from "../shared/concurrency.ts";
import { rateLimitStore } from "../shared/store/llm-rate-limit.ts";
import { seedCalls, seedMetrics } from "./data.ts";
import type { PipelineHarness } from "./harness.ts";
import { type JobItem, runJob } from "./job-run.ts";
import { type BenchFigure, fmt, log } from "./report.ts";
import { messagesSentTo } from "./request-meter.ts";

export interface RateLimitPlan {
  /** The throughput job's items (5 metrics per call). */
  items: number;
  /** The noisy neighbour's large job. */
  neighbourItems: number;
  latencyMs: number;
  limits: Required<RateLimits>;
}

/**
 * Figure 8's account: tier-4-like limits for one model. At the bench transcripts' ~875
 * uncached input tokens per request the input-token limit binds, at about 38 items/s.
 */
export const rateLimitPlanFor = (quick: boolean): RateLimitPlan => ({
  items: quick ? 1_000 : 10_000,
  neighbourItems: quick ? 2_000 : 20_000,
  latencyMs: 1_000,
  limits: { requestsPerMinute: 4_000, inputTokensPerMinute: 2_000_000, outputTokensPerMinute: 400_000 },
});

const METRICS_PER_CALL = 5;
const SMALL_JOB_ITEMS = 20;

interface Served {
  model: string;
  status: number;
  receivedAt: number;
  usage?: { input_tokens: number; output_tokens: number; cache_creation_input_tokens: number };
}

/** Items a second the limits allow for a job whose items use `perItem` of each. */
function allowedItemsPerSecond(
  limits: Required<RateLimits>,
  perItem: { requests: number; input: number; output: number },
) {
  return (
    Math.min(
      limits.requestsPerMinute / perItem.requests,
      limits.inputTokensPerMinute / perItem.input,
      limits.outputTokensPerMinute / perItem.output,
    ) / 60
  );
}

/** How the job started: its items enqueued, its first request, and its answers per second in the first seconds. */
function startProfile(served: readonly Served[], createdAt: number, enqueueMs: number): string {
  const answeredAt = served
    .filter((request) => request.status === 200)
    .map((request) => request.receivedAt - createdAt);
  const perSecond = Array.from(
    { length: 20 },
    (_, second) => answeredAt.filter((ms) => ms >= second * 1000 && ms < (second + 1) * 1000).length,
  );
  const first = Math.min(...answeredAt);
  return (
    `items enqueued in ${fmt(enqueueMs / 1000, 1)} s, first request ${fmt(first / 1000, 1)} s after creation; ` +
    `requests in each of the first 20 s: ${perSecond.join(" ")}`
  );
}

/** What the shared limiter holds for `model`: its share of the limits and what it learned of its estimates. */
async function limiterState(model: string): Promise<string> {
  const state = await rateLimitStore.read(model);
  const calibration = state?.calibration;
  return (
    `share ${fmt(state?.scale ?? 1, 2)} of the limits, input tokens ${fmt(calibration?.inputCorrection ?? 1, 2)} ` +
    `per token estimated, ${fmt(calibration?.outputPerRequest ?? 0, 0)} output tokens per request`
  );
}

async function smallJobMs(api: PipelineHarness["api"], callIds: string[], metricIds: string[]) {
  const started = Date.now();
  const created = await api<{ data: { id: string } }>("POST", "/v1/metric/collection-jobs", {
    callIds,
    metrics: metricIds.map((id) => ({ id })),
  });
  if (created.status !== 201) throw new Error(`small job: ${created.status}`);
  for (;;) {
    const { body } = await api<{ data: { status: string } }>(
      "GET",
      `/v1/metric/collection-jobs/${created.body.data.id}`,
    );
    if (!["PENDING", "PROCESSING"].includes(body.data.status)) {
      if (body.data.status !== "COMPLETED") throw new Error(`small job ended ${body.data.status}`);
      return Date.now() - started;
    }
    await sleep(50);
  }
}

export async function measureRateLimits(harness: PipelineHarness, plan: RateLimitPlan) {
  const problems: string[] = [];
  const largest = Math.max(plan.items, plan.neighbourItems);
  const callIds = await seedCalls(harness.orgId, largest / METRICS_PER_CALL, 400);
  const metrics = await seedMetrics(harness.orgId, "limits", METRICS_PER_CALL);
  const neighbour = await harness.newOrganization("Neighbour");
  const neighbourCalls = await seedCalls(neighbour.orgId, SMALL_JOB_ITEMS / METRICS_PER_CALL, 400);
  const neighbourMetrics = await seedMetrics(neighbour.orgId, "neighbour", METRICS_PER_CALL);
  const neighbourMetricIds = neighbourMetrics.map((m) => m.id);

  await harness.anthropic.reset();
  await harness.anthropic.configure({ latencyMs: plan.latencyMs, rateLimits: plan.limits });
  // A first small job tells the limiter the account's limits (a new stack's first answers do).
  const idleMs = await smallJobMs(neighbour.api, neighbourCalls, neighbourMetricIds);
  log(`  limits: a 20-item job alone took ${fmt(idleMs / 1000, 1)} s`);
  const [model = ""] = (await harness.anthropic.requests()).map((request: Served) => request.model);
  log(`  limits: the limiter before the job: ${await limiterState(model)}`);

  await harness.anthropic.reset();
  const run = await runJob(harness, callIds.slice(0, plan.items / METRICS_PER_CALL), metrics);
  const served: readonly Served[] = await harness.anthropic.requests();
  const job: JobItem = run.job;
  if (job.completedItems !== plan.items || job.failedItems !== 0) {
    problems.push(`rate-limited job: completed=${job.completedItems} failed=${job.failedItems} of ${plan.items}`);
  }
  const answered = served.filter((request) => request.status === 200);
  const limited = served.filter((request) => request.status === 429).length;
  const perItem = {
    requests: answered.length / plan.items,
    input: (job.usageInputTokens + job.usageCacheCreationInputTokens) / plan.items,
    output: job.usageOutputTokens / plan.items,
  };
  const allowed = allowedItemsPerSecond(plan.limits, perItem);
  const achieved = plan.items / (run.totalMs / 1000);
  const lambdaSecondsPerItem = (run.handlerMs.evaluator ?? 0) / 1000 / plan.items;
  const workMessages = messagesSentTo(run.sqs, "-work");
  log(
    `  limits: ${plan.items.toLocaleString("en")} items in ${fmt(run.totalMs / 1000, 1)} s, ${fmt(achieved, 1)} items/s ` +
      `of ${fmt(allowed, 1)} allowed; ${limited} of ${served.length} requests answered 429; ` +
      `${run.invocations.evaluator ?? 0} evaluator invocations, ${workMessages - plan.items} items sent back (deferred)`,
  );

  log(`  limits: ${startProfile(served, Date.parse(job.createdAt), run.enqueueMs)}`);
  log(`  limits: the limiter after the job: ${await limiterState(model)}`);

  // The neighbour's small job while this organization's large one runs.
  await harness.anthropic.reset();
  const large = await harness.api<{ data: { id: string } }>("POST", "/v1/metric/collection-jobs", {
    callIds: callIds.slice(0, plan.neighbourItems / METRICS_PER_CALL),
    metrics: metrics.map((m) => ({ id: m.id })),
  });
  if (large.status !== 201) throw new Error(`large job: ${large.status}`);
  // Let the large job fill the queue and the schedule first.
  await sleep(20_000);
  const busyMs = await smallJobMs(neighbour.api, neighbourCalls, neighbourMetricIds);
  await harness.api("POST", `/v1/metric/collection-jobs/${large.body.data.id}/cancel`);
  log(
    `  limits: the 20-item job beside a ${plan.neighbourItems.toLocaleString("en")}-item one took ${fmt(busyMs / 1000, 1)} s`,
  );
  // The canceled job's messages drain (skipped) before the next measurement.
  await sleep(10_000);

  const ratio = achieved / allowed;
  const figures: BenchFigure[] = [
    {
      name: `8. Throughput ÷ what the rate limits allow, ${plan.items.toLocaleString("en")} items, L = ${plan.latencyMs} ms`,
      measured: fmt(ratio, 2),
      target: "≥ 0.90",
      met: ratio >= 0.9,
      note:
        `${fmt(achieved, 1)} items/s; limits ${plan.limits.requestsPerMinute} RPM, ${plan.limits.inputTokensPerMinute} ITPM, ` +
        `${plan.limits.outputTokensPerMinute} OTPM; per item ${fmt(perItem.requests, 2)} requests, ` +
        `${fmt(perItem.input, 0)} uncached input and ${fmt(perItem.output, 0)} output tokens → ${fmt(allowed, 1)} items/s allowed`,
    },
    {
      name: "8. Items ended in ERROR by rate limiting",
      measured: String(job.failedItems),
      target: "0",
      met: job.failedItems === 0,
    },
    {
      name: "8. Requests answered 429",
      measured: `${fmt((100 * limited) / Math.max(1, served.length), 1)} %`,
      target: "≤ 5 %",
      met: limited <= 0.05 * served.length,
      note: `${limited} of ${served.length}`,
    },
    {
      name: "8. Lambda seconds per item ÷ model latency",
      measured: fmt(lambdaSecondsPerItem / (plan.latencyMs / 1000), 2),
      target: "≤ 0.2",
      met: lambdaSecondsPerItem <= 0.2 * (plan.latencyMs / 1000),
      note: `${fmt(lambdaSecondsPerItem, 3)} s of evaluator time per item at ${plan.latencyMs} ms per request`,
    },
    {
      name: "8. Noisy neighbour: 20-item job beside a large one ÷ alone",
      measured: fmt(busyMs / idleMs, 2),
      target: "≤ 3",
      met: busyMs <= 3 * idleMs,
      note: `${fmt(busyMs / 1000, 1)} s beside a ${plan.neighbourItems.toLocaleString("en")}-item job vs ${fmt(idleMs / 1000, 1)} s alone`,
    },
  ];
  await harness.anthropic.configure({ rateLimits: undefined });
  return { figures, problems };
}
