/**
 * Figure 4: the LLM bill of a job with realistic (~3,000-token) transcripts in each judge
 * mode, realtime and through the Message Batches API, against a naive baseline that sends
 * the same prompts without cache_control, one uncached request per item.
 */
import Anthropic from "@anthropic-ai/sdk";
import { mapLimit, sleep } from "../shared/concurrency.ts";
import { config } from "../shared/config.ts";
import { estimateCostUsd, priceOf } from "../shared/llm/pricing.ts";
import { buildJudgeRequest } from "../shared/llm/prompt.ts";
import { collectBatches, defaultLlmBatchDeps } from "../shared/pipeline/llm-batches.ts";
import type { JudgeMode, LlmMode } from "../shared/schemas/job.ts";
import type { MetricDefinition } from "../shared/schemas/metric.ts";
import { getCall } from "../shared/store/calls.ts";
import { seedCalls, seedMetrics } from "./data.ts";
import type { PipelineHarness } from "./harness.ts";
import { countProblems, type JobItem, runJob } from "./job-run.ts";
import { type BenchFigure, fmt, log } from "./report.ts";

const METRICS = 5;
const TRANSCRIPT_TOKENS = 3000;
/**
 * Share of a batch's requests that read a cached prefix: Anthropic's cache hits inside a
 * batch are best effort (its documentation reports 30–98 % depending on traffic).
 */
const BATCH_CACHE_HIT_RATE = 0.5;

interface ModeRun {
  judgeMode: JudgeMode;
  llmMode: LlmMode;
  usage: JobItem;
  /** Input tokens at their prices (cache writes and reads included), per million. */
  inputCost: number;
  perThousand: number;
}
/** With its input cost over the naive baseline's. */
type ModeCost = ModeRun & { ratio: number };

export async function measureLlmCost(harness: PipelineHarness, calls: number) {
  const started = performance.now();
  await harness.anthropic.configure({ latencyMs: 0, batchCacheHitRate: BATCH_CACHE_HIT_RATE });
  const costCalls = await seedCalls(harness.orgId, calls, TRANSCRIPT_TOKENS);
  const costMetrics = await seedMetrics(harness.orgId, "cost", METRICS);
  const model = config().judgeModel;
  const price = priceOf(model);
  if (!price) throw new Error(`no price for ${model}`);
  const problems: string[] = [];
  const runs: ModeRun[] = [];
  const modes = [
    ["isolated", "realtime"],
    ["grouped", "realtime"],
    ["isolated", "batch"],
    ["grouped", "batch"],
  ] as const;
  for (const [judgeMode, llmMode] of modes) {
    // Each mode starts with an empty prompt cache, as a job on calls never judged before.
    await harness.anthropic.reset();
    const run = await withBatchCollection(llmMode, () =>
      runJob(harness, costCalls, costMetrics, { judgeMode, llmMode }),
    );
    problems.push(...(await countProblems(harness, `LLM cost (${judgeMode}, ${llmMode})`, run)));
    const usage = run.job;
    const inputCost =
      usage.usageInputTokens * price.input +
      usage.usageCacheCreationInputTokens * price.cacheWrite +
      usage.usageCacheReadInputTokens * price.cacheRead;
    runs.push({
      judgeMode,
      llmMode,
      usage,
      inputCost,
      perThousand: (Number(usage.estimatedCostUsd) / run.items) * 1000,
    });
  }
  const naiveInputTokens = await naiveInputTokensOf(harness, costCalls, costMetrics, model);
  log(
    `  LLM cost jobs (2 judge modes × realtime, batch) and naive baseline: ${fmt((performance.now() - started) / 1000, 1)} s`,
  );
  const costs: ModeCost[] = runs.map((run) => ({ ...run, ratio: run.inputCost / (naiveInputTokens * price.input) }));

  const [isolated, grouped, isolatedBatch, groupedBatch] = costs as [ModeCost, ModeCost, ModeCost, ModeCost];
  const items = calls * METRICS;
  const naiveCost = estimateCostUsd(model, {
    inputTokens: naiveInputTokens,
    outputTokens: Number(isolated.usage.usageOutputTokens),
    cacheCreationInputTokens: 0,
    cacheReadInputTokens: 0,
    thinkingTokens: 0,
  });
  const naivePerThousand = ((naiveCost ?? 0) / items) * 1000;
  const tokens = ({ usage }: ModeCost) =>
    `input ${usage.usageInputTokens}, cache writes ${usage.usageCacheCreationInputTokens}, cache reads ${usage.usageCacheReadInputTokens}, output ${usage.usageOutputTokens}`;
  const shape = `${calls} calls × ${METRICS} metrics, ~3,000-token transcripts`;
  const figures: BenchFigure[] = [
    {
      name: `4. LLM input cost, isolated / naive (${shape})`,
      measured: `${fmt(isolated.ratio * 100, 1)} %`,
      target: "≤ 30 %",
      met: isolated.ratio <= 0.3,
      note: `${tokens(isolated)} vs naive input ${naiveInputTokens}`,
    },
    {
      name: "4. LLM input cost, grouped / naive",
      measured: `${fmt(grouped.ratio * 100, 1)} %`,
      target: "≤ 25 %",
      met: grouped.ratio <= 0.25,
      note: tokens(grouped),
    },
    {
      name: `4. LLM cost per 1,000 items, isolated, at list price (${model})`,
      measured: `$${fmt(isolated.perThousand, 2)}`,
      target: "(reported)",
      met: null,
      note: `naive: $${fmt(naivePerThousand, 2)}`,
    },
    {
      name: "4. LLM cost per 1,000 items, grouped",
      measured: `$${fmt(grouped.perThousand, 2)}`,
      target: "≤ $2.50",
      met: grouped.perThousand <= 2.5,
    },
    {
      name: `4. LLM cost per 1,000 items, isolated, Message Batches (${BATCH_CACHE_HIT_RATE * 100} % of cache hits land)`,
      measured: `$${fmt(isolatedBatch.perThousand, 2)}`,
      target: "(reported)",
      met: null,
      note: tokens(isolatedBatch),
    },
    {
      name: "4. LLM cost per 1,000 items, grouped, Message Batches",
      measured: `$${fmt(groupedBatch.perThousand, 2)}`,
      target: "≤ $1.25",
      met: groupedBatch.perThousand <= 1.25,
      note: tokens(groupedBatch),
    },
  ];
  return {
    figures,
    problems,
    result: { model, price, naiveInputTokens, naivePerThousand, modes: costs },
  };
}

/**
 * Runs `job`, for a batch-mode job with the batch collector every half second instead of
 * its schedule's minute, so the figure does not wait on the schedule.
 */
async function withBatchCollection<T>(llmMode: LlmMode, job: () => Promise<T>): Promise<T> {
  if (llmMode !== "batch") return job();
  let stopped = false;
  const collecting = (async () => {
    while (!stopped) {
      await collectBatches(defaultLlmBatchDeps());
      await sleep(500);
    }
  })();
  try {
    return await job();
  } finally {
    stopped = true;
    await collecting;
  }
}

/** Input tokens of the same judge requests without cache_control, straight to the fake server. */
async function naiveInputTokensOf(
  harness: PipelineHarness,
  callIds: string[],
  metrics: MetricDefinition[],
  model: string,
): Promise<number> {
  const naiveClient = new Anthropic({ apiKey: "bench", baseURL: harness.anthropic.url, maxRetries: 0 });
  let naiveInputTokens = 0;
  // Ten calls at a time: it only counts tokens, and one call after another took several seconds.
  await mapLimit(callIds, 10, async (callId) => {
    const call = await getCall(harness.orgId, callId);
    if (!call) throw new Error(`call ${callId} missing`);
    await Promise.all(
      metrics.map(async (definition) => {
        const request = buildJudgeRequest(definition, call, { model, maxTokens: config().judgeMaxTokens });
        const uncached = JSON.parse(JSON.stringify(request).replaceAll(',"cache_control":{"type":"ephemeral"}', ""));
        const response = await naiveClient.messages.create(uncached);
        naiveInputTokens += response.usage.input_tokens;
      }),
    );
  });
  return naiveInputTokens;
}
