/**
 * Figure 4: the LLM bill of a job with realistic (~3,000-token) transcripts, against a naive
 * baseline that sends the same prompts without cache_control, one uncached request per item.
 */
import Anthropic from "@anthropic-ai/sdk";
import { mapLimit } from "../shared/concurrency.ts";
import { config } from "../shared/config.ts";
import { estimateCostUsd, priceOf } from "../shared/llm/pricing.ts";
import { buildJudgeRequest } from "../shared/llm/prompt.ts";
import type { MetricDefinition } from "../shared/schemas/metric.ts";
import { getCall } from "../shared/store/calls.ts";
import { seedCalls, seedMetrics } from "./data.ts";
import type { PipelineHarness } from "./harness.ts";
import { countProblems, runJob } from "./job-run.ts";
import { type BenchFigure, fmt, log } from "./report.ts";

const METRICS = 5;
const TRANSCRIPT_TOKENS = 3000;

export async function measureLlmCost(harness: PipelineHarness, calls: number) {
  const started = performance.now();
  await harness.anthropic.configure({ latencyMs: 0 });
  await harness.anthropic.reset();
  const costCalls = await seedCalls(harness.orgId, calls, TRANSCRIPT_TOKENS);
  const costMetrics = await seedMetrics(harness.orgId, "cost", METRICS);
  const run = await runJob(harness, costCalls, costMetrics);
  const problems = await countProblems(harness, "LLM cost", run);
  const model = config().judgeModel;
  const price = priceOf(model);
  if (!price) throw new Error(`no price for ${model}`);
  const usage = run.job;
  const cachedInputCost =
    usage.usageInputTokens * price.input +
    usage.usageCacheCreationInputTokens * price.cacheWrite +
    usage.usageCacheReadInputTokens * price.cacheRead;
  const naiveInputTokens = await naiveInputTokensOf(harness, costCalls, costMetrics, model);
  log(`  LLM cost job and naive baseline: ${fmt((performance.now() - started) / 1000, 1)} s`);

  const ratio = cachedInputCost / (naiveInputTokens * price.input);
  const perThousand = (Number(usage.estimatedCostUsd) / run.items) * 1000;
  const naiveCost = estimateCostUsd(model, {
    inputTokens: naiveInputTokens,
    outputTokens: Number(usage.usageOutputTokens),
    cacheCreationInputTokens: 0,
    cacheReadInputTokens: 0,
  });
  const naivePerThousand = ((naiveCost ?? 0) / run.items) * 1000;
  const figures: BenchFigure[] = [
    {
      name: `4. LLM input cost, cached / naive (${calls} calls × ${METRICS} metrics, ~3,000-token transcripts)`,
      measured: `${fmt(ratio * 100, 1)} %`,
      target: "≤ 30 %",
      met: ratio <= 0.3,
      note: `input ${usage.usageInputTokens}, cache writes ${usage.usageCacheCreationInputTokens}, cache reads ${usage.usageCacheReadInputTokens} vs naive input ${naiveInputTokens}`,
    },
    {
      name: `4. LLM cost per 1,000 items at list price (${model})`,
      measured: `$${fmt(perThousand, 2)}`,
      target: "(reported)",
      met: null,
      note: `naive: $${fmt(naivePerThousand, 2)}`,
    },
  ];
  return {
    figures,
    problems,
    result: { model, price, usage, naiveInputTokens, ratio, perThousand, naivePerThousand },
  };
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
