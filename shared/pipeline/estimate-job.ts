/**
 * What a job would cost before it runs (POST /v1/metric/collection-jobs/estimate): its item
 * counts and an estimated LLM cost range per metric and in total, for each judging mode
 * (isolated or grouped, realtime or batch), from the calls' transcript sizes and the price
 * table. Nothing is stored. The range's ends (docs/api.md):
 * - low: per call and model, the first judgment writes the prompt cache and the others read
 *   it (grouped: one request per call and model); each judgment writes 50 output tokens;
 * - high: every judgment writes the cache anew and writes 1,000 output tokens.
 * The Message Batches API bills half of each.
 */
import { assertModelsAllowed, modelOf } from "../allowed-models.ts";
import { unique } from "../concurrency.ts";
import { keys } from "../keys.ts";
import { CHARS_PER_TOKEN, estimateUncachedInputTokens, judgeRequestFor } from "../llm/judge.ts";
import { BATCH_PRICE_FACTOR, priceOf } from "../llm/pricing.ts";
import type { Call } from "../schemas/call.ts";
import type { CreateJobInput, JudgeMode, LlmMode } from "../schemas/job.ts";
import type { MetricDefinition } from "../schemas/metric.ts";
import { batchGet } from "../store/batch-get.ts";
import { assertKnownReferences, assertNotArchived, resolveMetricVersions } from "../store/metrics.ts";
import { judgeSettings } from "./evaluators.ts";

/** Characters a segment's line adds to its text in the prompt (`[S12] 01:02 CUSTOMER: `). */
const SEGMENT_LINE_CHARS = 24;
/** A call stored before transcript sizes were kept: its segments are taken to be this long. */
const ASSUMED_SEGMENT_CHARS = 120;
const OUTPUT_TOKENS = { low: 50, high: 1_000 } as const;

export interface CostRange {
  low: number;
  high: number;
}

interface Judged {
  definition: MetricDefinition;
  model: string;
  /** The prompt's cacheable prefix without the transcript, and the question after it, in tokens. */
  prefixTokens: number;
  questionTokens: number;
}

const round = (usd: number) => Math.round(usd * 1_000_000) / 1_000_000;
const zero = (): CostRange => ({ low: 0, high: 0 });

/** Prompt sizes of a definition, measured on the real prompt of an empty call. */
function judged(definition: MetricDefinition): Judged {
  const model = modelOf(definition) as string;
  const emptyCall = {
    id: "estimate",
    agentId: "estimate",
    startedAt: new Date(0).toISOString(),
    callDirection: "INBOUND",
    interfaceType: "PHONE",
    properties: {},
    transcript: [{ role: "AGENT", text: "", startOffsetMs: 0, endOffsetMs: 0 }],
    createdAt: new Date(0).toISOString(),
  } as unknown as Call;
  const { request } = judgeRequestFor([definition], emptyCall, judgeSettings());
  const full = estimateUncachedInputTokens(request, false);
  const questionTokens = estimateUncachedInputTokens(request, true);
  return { definition, model, prefixTokens: Math.max(0, full - questionTokens), questionTokens };
}

/** Cost of one call's LLM judgments of one model, in each mode. */
function callCost(group: Judged[], transcriptTokens: number, mode: JudgeMode): { total: CostRange; each: CostRange[] } {
  const [first] = group;
  const price = first && priceOf(first.model);
  if (!first || !price) return { total: zero(), each: group.map(zero) };
  const perMillion = (usd: number) => usd / 1_000_000;
  const prefix = (judgment: Judged) => judgment.prefixTokens + transcriptTokens;
  if (mode === "grouped") {
    const questions = group.reduce((sum, judgment) => sum + judgment.questionTokens, 0);
    const outputs = (tokens: number) => tokens * group.length * price.output;
    const low = perMillion(prefix(first) * price.input + questions * price.input + outputs(OUTPUT_TOKENS.low));
    const high = perMillion(prefix(first) * price.cacheWrite + questions * price.input + outputs(OUTPUT_TOKENS.high));
    return { total: { low, high }, each: group.map(() => ({ low: low / group.length, high: high / group.length })) };
  }
  const each = group.map((judgment, index) => ({
    low: perMillion(
      prefix(judgment) * (index === 0 ? price.cacheWrite : price.cacheRead) +
        judgment.questionTokens * price.input +
        OUTPUT_TOKENS.low * price.output,
    ),
    high: perMillion(
      prefix(judgment) * price.cacheWrite + judgment.questionTokens * price.input + OUTPUT_TOKENS.high * price.output,
    ),
  }));
  const total = each.reduce((sum, cost) => ({ low: sum.low + cost.low, high: sum.high + cost.high }), zero());
  return { total, each };
}

/** A transcript's prompt tokens, from its segments and characters (as its call item stores them). */
const transcriptTokenCount = (segments: number, chars: number) =>
  segments === 0 ? 0 : Math.ceil((chars + segments * SEGMENT_LINE_CHARS) / CHARS_PER_TOKEN);

/** Each call's transcript in tokens, from the sizes stored with it. */
async function transcriptTokens(orgId: string, callIds: string[]): Promise<Map<string, number>> {
  const items = await batchGet(
    callIds.map((callId) => keys.call(orgId, callId)),
    { projection: ["id", "segmentCount", "transcriptChars"] },
  );
  return new Map(
    items.map((item) => {
      const segments = Number(item.segmentCount ?? 0);
      const chars = typeof item.transcriptChars === "number" ? item.transcriptChars : segments * ASSUMED_SEGMENT_CHARS;
      return [String(item.id), transcriptTokenCount(segments, chars)];
    }),
  );
}

async function resolve(orgId: string, input: CreateJobInput) {
  const storedCallIds = unique(input.callIds ?? []);
  const [{ definitions, unknownMetricIds, unknownVersions }, tokens] = await Promise.all([
    resolveMetricVersions(orgId, input.metrics),
    transcriptTokens(orgId, storedCallIds),
  ]);
  const callIds = [...storedCallIds];
  const unknownCallIds = storedCallIds.filter((callId) => !tokens.has(callId));
  assertKnownReferences({ unknownMetricIds, unknownVersions, unknownCallIds });
  assertNotArchived(definitions);
  await assertModelsAllowed(orgId, definitions);
  // Inline calls are estimated from their transcripts, never stored for an estimate.
  for (const [index, call] of (input.calls ?? []).entries()) {
    const chars = call.transcript.reduce((sum, segment) => sum + segment.text.length, 0);
    callIds.push(`inline-${index}`);
    tokens.set(`inline-${index}`, transcriptTokenCount(call.transcript.length, chars));
  }
  return { callIds, tokens, definitions };
}

const modes: { judgeMode: JudgeMode; llmMode: LlmMode }[] = [
  { judgeMode: "isolated", llmMode: "realtime" },
  { judgeMode: "isolated", llmMode: "batch" },
  { judgeMode: "grouped", llmMode: "realtime" },
  { judgeMode: "grouped", llmMode: "batch" },
];
const modeKey = (judgeMode: JudgeMode, llmMode: LlmMode) => `${judgeMode}/${llmMode}`;
const factor = (llmMode: LlmMode) => (llmMode === "batch" ? BATCH_PRICE_FACTOR : 1);

function add(sum: CostRange, cost: CostRange | undefined, scale: number) {
  sum.low += (cost?.low ?? 0) * scale;
  sum.high += (cost?.high ?? 0) * scale;
}

/** What a job of `input` would cost: checks its calls and definitions first (the estimate route). */
export async function estimateJob(orgId: string, input: CreateJobInput) {
  const { callIds, tokens, definitions } = await resolve(orgId, input);
  return estimateOf({ callIds, tokens, definitions, judgeMode: input.judgeMode, llmMode: input.llmMode });
}

/** What a job would cost on definitions its creation resolved already (and calls it checked). */
export async function estimateJobCost(
  orgId: string,
  job: { callIds: string[]; definitions: MetricDefinition[]; judgeMode?: JudgeMode; llmMode?: LlmMode },
) {
  return estimateOf({ ...job, tokens: await transcriptTokens(orgId, job.callIds) });
}

function estimateOf(input: {
  callIds: string[];
  tokens: Map<string, number>;
  definitions: MetricDefinition[];
  judgeMode?: JudgeMode;
  llmMode?: LlmMode;
}) {
  const { callIds, tokens, definitions } = input;
  const llm = definitions.filter((definition) => definition.calculationType === "LLM_JUDGE").map(judged);
  const byModel = [...Map.groupBy(llm, (judgment) => judgment.model).values()];
  const judgeMode = input.judgeMode ?? "isolated";
  const llmMode = input.llmMode ?? "realtime";

  const totals = new Map(modes.map((mode) => [modeKey(mode.judgeMode, mode.llmMode), zero()]));
  const perMetric = new Map(definitions.map((definition) => [definition.id, zero()]));
  const calls = callIds.map((callId) => tokens.get(callId) ?? 0).filter((callTokens) => callTokens > 0);
  for (const callTokens of calls) {
    for (const group of byModel) {
      for (const mode of modes) {
        const { total, each } = callCost(group, callTokens, mode.judgeMode);
        add(totals.get(modeKey(mode.judgeMode, mode.llmMode)) ?? zero(), total, factor(mode.llmMode));
        if (mode.judgeMode !== judgeMode || mode.llmMode !== llmMode) continue;
        for (const [index, judgment] of group.entries()) {
          add(perMetric.get(judgment.definition.id) ?? zero(), each[index], factor(llmMode));
        }
      }
    }
  }
  const rounded = (range: CostRange | undefined): CostRange => ({
    low: round(range?.low ?? 0),
    high: round(range?.high ?? 0),
  });
  return {
    calls: callIds.length,
    items: callIds.length * definitions.length,
    llmItems: callIds.length * llm.length,
    judgeMode,
    llmMode,
    metrics: definitions.map((definition) => ({
      metricDefinitionId: definition.id,
      slug: definition.slug,
      ...(modelOf(definition) ? { model: modelOf(definition) } : {}),
      items: callIds.length,
      estimatedCostUsd: rounded(perMetric.get(definition.id)),
    })),
    estimatedCostUsd: rounded(totals.get(modeKey(judgeMode, llmMode))),
    byMode: modes.map((mode) => ({
      ...mode,
      estimatedCostUsd: rounded(totals.get(modeKey(mode.judgeMode, mode.llmMode))),
    })),
    unpricedModels: [...new Set(llm.map((judgment) => judgment.model))].filter((model) => !priceOf(model)),
  };
}
