/**
 * How one item is computed. The evaluator worker looks the calculation type up here, so
 * the LLM judge plugs in beside the programmatic metrics without touching the pipeline.
 */
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
>;

/** Thrown for failures worth retrying later (rate limits, outages); the queue owns the delay. */
export class RetryableEvaluationError extends Error {
  readonly retryAfterSeconds?: number;
  constructor(message: string, retryAfterSeconds?: number) {
    super(message);
    this.name = "RetryableEvaluationError";
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export type EvaluateItem = (definition: MetricDefinition, call: Call) => Promise<EvaluationOutcome>;

export const evaluateBuiltIn: EvaluateItem = async (definition, call) => {
  if (!definition.builtIn) {
    return { captureStatus: "ERROR", context: "CALL", errorMessage: "Built-in metric has no builtIn configuration" };
  }
  const result = computeBuiltInMetric(definition.builtIn, call);
  if (result.status === "SUCCESS") {
    return { captureStatus: "SUCCESS", context: "CALL", value: result.value, valueReasoning: result.reasoning };
  }
  return { captureStatus: result.status, context: "CALL", valueReasoning: result.reasoning };
};

export const evaluateByCalculationType: EvaluateItem = (definition, call) => {
  switch (definition.calculationType) {
    case "BUILT_IN":
      return evaluateBuiltIn(definition, call);
    case "LLM_JUDGE":
      return Promise.resolve({
        captureStatus: "ERROR",
        context: "CALL",
        errorMessage: "LLM_JUDGE metrics are not available in this version",
      });
  }
};
