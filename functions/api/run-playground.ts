import { z } from "zod";
import { notFound, parseOrInvalid } from "../../shared/errors.ts";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { ApiError } from "../../shared/http/errors.ts";
import { LlmCallsBlockedError, RetryableEvaluationError } from "../../shared/pipeline/evaluation-errors.ts";
import { evaluateByCalculationType } from "../../shared/pipeline/evaluators.ts";
import { createMetricSchema, type MetricDefinition } from "../../shared/schemas/metric.ts";
import { getCall } from "../../shared/store/calls.ts";
import { getMetric } from "../../shared/store/metrics.ts";

const savedMetricSchema = z.strictObject({ id: z.string().trim().min(1).max(256) });

async function resolveDefinition(orgId: string, metric: Record<string, unknown>): Promise<MetricDefinition> {
  if (Object.keys(metric).length === 1 && "id" in metric) {
    const { id } = parseOrInvalid(savedMetricSchema, metric, { source: "body.metric" });
    const saved = await getMetric(orgId, id);
    if (!saved) throw notFound("Metric definition", id);
    return saved;
  }
  const now = new Date().toISOString();
  return {
    ...parseOrInvalid(createMetricSchema, metric, { source: "body.metric" }),
    id: "inline",
    version: 0,
    createdAt: now,
    updatedAt: now,
  };
}

/** Evaluates one definition on one call synchronously; nothing is stored. */
export const handler = apiRoute(contract["POST /v1/metric/playground"], async ({ principal, body }) => {
  const [definition, call] = await Promise.all([
    resolveDefinition(principal.orgId, body.metric),
    getCall(principal.orgId, body.callId),
  ]);
  if (!call) throw notFound("Call", body.callId);
  try {
    const outcome = await evaluateByCalculationType(definition, call);
    return {
      callId: call.id,
      metricDefinitionId: definition.id,
      metricVersion: definition.version,
      computedAt: new Date().toISOString(),
      ...outcome,
    };
  } catch (error) {
    if (error instanceof RetryableEvaluationError) {
      const retryAfter = String(Math.max(1, error.retryAfterSeconds ?? 5));
      throw new ApiError(503, "llm_unavailable", `The LLM is unavailable right now: ${error.message}`, {
        headers: { "retry-after": retryAfter },
      });
    }
    if (error instanceof LlmCallsBlockedError) throw new ApiError(502, "llm_rejected", error.message);
    throw error;
  }
});
