/**
 * How one item is computed, by calculation type: built-in programmatic metrics or the LLM
 * judge; and how a call's LLM metrics are judged together (a job's `grouped` mode). The
 * pipeline only sees `EvaluateItem` and `EvaluateGroup`, so tests can swap in any evaluation.
 */
import { config } from "../config.ts";
import { anthropicClient, refreshAnthropicClient } from "../llm/client.ts";
import {
  createGroupedLlmJudge,
  createLlmJudge,
  estimateUncachedInputTokens,
  type JudgeDeps,
  judgeRequestFor,
} from "../llm/judge.ts";
import { SharedRateLimiter } from "../llm/rate-limiter.ts";
import { computeBuiltInMetric } from "../metrics/builtin.ts";
import type { Call } from "../schemas/call.ts";
import type { MetricValue } from "../schemas/job.ts";
import type { MetricDefinition } from "../schemas/metric.ts";
import { rateLimitStore } from "../store/llm-rate-limit.ts";

/** What an evaluation yields; the pipeline adds ids, version and timestamps. */
export type EvaluationOutcome = Pick<
  MetricValue,
  | "captureStatus"
  | "context"
  | "value"
  | "valueReasoning"
  | "confidence"
  | "errorMessage"
  | "segment"
  | "fromSegment"
  | "toSegment"
  | "model"
  | "usage"
  | "estimatedCostUsd"
>;

/**
 * Evaluates one metric on one call. `estimatedInputTokens` is what the limiter was told the
 * model request would count (`modelDemand`): the judge hands it back with the answer, so the
 * limiter compares each answer with its own request's estimate.
 */
export type EvaluateItem = (
  definition: MetricDefinition,
  call: Call,
  estimatedInputTokens?: number,
) => Promise<EvaluationOutcome>;
/** Judges LLM metrics of one call that share a model together; an outcome per definition, in order. */
export type EvaluateGroup = (
  definitions: MetricDefinition[],
  call: Call,
  estimatedInputTokens?: number,
) => Promise<EvaluationOutcome[]>;

const evaluateBuiltIn: EvaluateItem = async (definition, call) => {
  if (!definition.builtIn) {
    return { captureStatus: "ERROR", context: "CALL", errorMessage: "Built-in metric has no builtIn configuration" };
  }
  const result = computeBuiltInMetric(definition.builtIn, call);
  if (result.status === "SUCCESS") {
    return { captureStatus: "SUCCESS", context: "CALL", value: result.value, valueReasoning: result.reasoning };
  }
  return { captureStatus: result.status, context: "CALL", valueReasoning: result.reasoning };
};

function createEvaluateByCalculationType(judge: EvaluateItem): EvaluateItem {
  return (definition, call, estimatedInputTokens) =>
    definition.calculationType === "BUILT_IN"
      ? evaluateBuiltIn(definition, call)
      : judge(definition, call, estimatedInputTokens);
}

/**
 * Definitions a grouped job may judge in one request share this key (same model and
 * effort); undefined for those always judged alone (built-ins, `isolated: true`).
 */
export function groupingKey(definition: MetricDefinition): string | undefined {
  if (definition.calculationType !== "LLM_JUDGE" || definition.isolated) return undefined;
  return `${definition.model ?? config().judgeModel}|${definition.effort ?? ""}`;
}

/**
 * Items in order as units to judge: items with the same key together, at the first one's
 * place; items without a key alone.
 */
export function judgingUnits<T>(items: T[], keyOf: (item: T) => string | undefined): T[][] {
  const units: T[][] = [];
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const key = keyOf(item);
    const group = key === undefined ? undefined : groups.get(key);
    if (group) {
      group.push(item);
      continue;
    }
    const unit = [item];
    if (key !== undefined) groups.set(key, unit);
    units.push(unit);
  }
  return units;
}

let sharedLimiter: SharedRateLimiter | undefined;

/** The limiter every evaluator shares (its state is in the table); built once per container. */
export function llmRateLimiter(): SharedRateLimiter {
  sharedLimiter ??= new SharedRateLimiter({ store: rateLimitStore }, { target: config().llmRateLimitTarget });
  return sharedLimiter;
}

/** A model request, as the limiter and the evaluator's schedule see it (`modelDemand`). */
export interface ModelDemand {
  model: string;
  demand: { requests: number; inputTokens: number };
  /** Its prompt prefix is long enough for the API to cache: a call's first request writes it for the others. */
  cacheable: boolean;
}

/**
 * The request judging `definitions` (LLM metrics sharing a model) on `call` together makes,
 * for the limiter: its model and uncached input tokens, estimated from its text (only what
 * follows the cached prefix when the call's cache is warm). Undefined for no model call:
 * built-ins, or a call without a transcript.
 */
export function modelDemand(definitions: MetricDefinition[], call: Call, cacheWarm: boolean): ModelDemand | undefined {
  if (call.transcript.length === 0 || definitions.length === 0) return undefined;
  if (definitions.some((definition) => definition.calculationType !== "LLM_JUDGE")) return undefined;
  const { request, model } = judgeRequestFor(definitions, call, judgeSettings());
  const whole = estimateUncachedInputTokens(request, false);
  const afterPrefix = estimateUncachedInputTokens(request, true);
  // A prefix shorter than the API caches is sent whole every time, warm or not.
  const cacheable = whole - afterPrefix >= config().minCacheablePromptTokens;
  return { model, demand: { requests: 1, inputTokens: cacheWarm && cacheable ? afterPrefix : whole }, cacheable };
}

/** The model, answer size and effort the judge asks with, as configured. */
export const judgeSettings = (): Pick<JudgeDeps, "defaultModel" | "maxTokens" | "effort"> => ({
  defaultModel: config().judgeModel,
  maxTokens: config().judgeMaxTokens,
  effort: config().judgeEffort || undefined,
});

/** The judge on the configured Anthropic client, reporting to the shared limiter. */
const judgeDeps = (): JudgeDeps => ({
  client: anthropicClient,
  rateLimits: llmRateLimiter(),
  refreshClient: refreshAnthropicClient,
  ...judgeSettings(),
});

let defaultEvaluate: EvaluateItem | undefined;
let defaultEvaluateGroup: EvaluateGroup | undefined;

/** Built-ins plus the judge; built on first use. */
export const evaluateByCalculationType: EvaluateItem = (definition, call, estimatedInputTokens) => {
  defaultEvaluate ??= createEvaluateByCalculationType(createLlmJudge(judgeDeps()));
  return defaultEvaluate(definition, call, estimatedInputTokens);
};

/** The grouped judge; built on first use. */
export const judgeTogether: EvaluateGroup = (definitions, call, estimatedInputTokens) => {
  defaultEvaluateGroup ??= createGroupedLlmJudge(judgeDeps());
  return defaultEvaluateGroup(definitions, call, estimatedInputTokens);
};
