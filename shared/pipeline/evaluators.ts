/**
 * How one item is computed, by calculation type: built-in programmatic metrics or the LLM
 * judge. The pipeline only sees `EvaluateItem`, so tests can swap in any evaluation.
 */
import { config } from "../config.ts";
import { anthropicClient, refreshAnthropicClient } from "../llm/client.ts";
import { createLlmJudge } from "../llm/judge.ts";
import { computeBuiltInMetric } from "../metrics/builtin.ts";
import type { Call } from "../schemas/call.ts";
import type { MetricValue } from "../schemas/job.ts";
import type { MetricDefinition } from "../schemas/metric.ts";

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

export type EvaluateItem = (definition: MetricDefinition, call: Call) => Promise<EvaluationOutcome>;

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
  return (definition, call) =>
    definition.calculationType === "BUILT_IN" ? evaluateBuiltIn(definition, call) : judge(definition, call);
}

let defaultEvaluate: EvaluateItem | undefined;

/** Built-ins plus the judge on the configured Anthropic client; built on first use. */
export const evaluateByCalculationType: EvaluateItem = (definition, call) => {
  defaultEvaluate ??= createEvaluateByCalculationType(
    createLlmJudge({
      client: anthropicClient,
      refreshClient: refreshAnthropicClient,
      defaultModel: config().judgeModel,
      maxTokens: config().judgeMaxTokens,
      effort: config().judgeEffort || undefined,
    }),
  );
  return defaultEvaluate(definition, call);
};
