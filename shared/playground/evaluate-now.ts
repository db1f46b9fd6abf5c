/**
 * The playground (docs/api.md): definitions tried on one call now, nothing stored. One
 * definition alone, or several in both judge modes side by side, so a user sees whether
 * grouping changes their answers before switching a job or policy to it.
 */
import { z } from "zod";
import { assertModelsAllowed } from "../allowed-models.ts";
import { mapLimit } from "../concurrency.ts";
import { notFound, parseOrInvalid } from "../errors.ts";
import { addUsage, emptyUsage } from "../llm/pricing.ts";
import type { SharedRateLimiter } from "../llm/rate-limiter.ts";
import { RetryableEvaluationError } from "../pipeline/evaluation-errors.ts";
import {
  type EvaluateGroup,
  type EvaluateItem,
  type EvaluationOutcome,
  evaluateByCalculationType,
  groupingKey,
  judgeTogether,
  judgingUnits,
  llmRateLimiter,
  modelDemand,
} from "../pipeline/evaluators.ts";
import { type Call, type CreateCallInput, type InlineMessage, inlineCall } from "../schemas/call.ts";
import { createMetricSchema, type MetricDefinition } from "../schemas/metric.ts";
import { getCall } from "../store/calls.ts";
import { getMetric } from "../store/metrics.ts";

/** The stored call a playground run names, or the inline transcript it sent (never stored). */
export async function playgroundCall(
  orgId: string,
  input: { callId?: string; call?: CreateCallInput; messages?: InlineMessage[]; message?: string },
): Promise<Call> {
  if (input.callId === undefined) return inlineCall(input);
  const call = await getCall(orgId, input.callId);
  if (!call) throw notFound("Call", input.callId);
  return call;
}

const savedMetricSchema = z.strictObject({ id: z.string().trim().min(1).max(256) });

/** `{id}` (id or slug) of a saved definition, or a whole definition to try before saving it. */
export async function resolveDefinition(
  orgId: string,
  metric: Record<string, unknown>,
  source = "body.metric",
): Promise<MetricDefinition> {
  if (Object.keys(metric).length === 1 && "id" in metric) {
    const { id } = parseOrInvalid(savedMetricSchema, metric, { source });
    const saved = await getMetric(orgId, id);
    if (!saved) throw notFound("Metric definition", id);
    await assertModelsAllowed(orgId, [saved]);
    return saved;
  }
  const now = new Date().toISOString();
  const inline = parseOrInvalid(createMetricSchema, metric, { source });
  await assertModelsAllowed(orgId, [inline]);
  return { ...inline, id: "inline", version: 0, createdAt: now, updatedAt: now };
}

/** Model requests a playground run makes: the definitions judged together, and whether the call's prompt cache is warm by then. */
export interface PlaygroundRequest {
  definitions: MetricDefinition[];
  cacheWarm: boolean;
}

/**
 * The playground's model calls go through the shared limiter, as a job's do, as its
 * organization's (the whole wait allowed, unless the organization holds reservations
 * already). When the account's limits (or a 429's retry-after) leave no room within it, the
 * run is refused with when to try again (503 and Retry-After), before any model call.
 */
export async function admitPlaygroundCalls(
  orgId: string,
  call: Call,
  requests: PlaygroundRequest[],
  limiter: Pick<SharedRateLimiter, "admit"> = llmRateLimiter(),
): Promise<void> {
  const byModel = new Map<string, { requests: number; inputTokens: number }>();
  for (const { definitions, cacheWarm } of requests) {
    const need = modelDemand(definitions, call, cacheWarm);
    if (!need) continue;
    const demand = byModel.get(need.model) ?? { requests: 0, inputTokens: 0 };
    demand.requests += need.demand.requests;
    demand.inputTokens += need.demand.inputTokens;
    byModel.set(need.model, demand);
  }
  for (const [model, demand] of byModel) {
    const admission = await limiter.admit(model, demand, { tenant: orgId, bulk: false, takesTurns: false });
    if (admission.admitted) continue;
    const retryAfterSeconds = Math.max(1, Math.ceil(admission.retryInMs / 1000));
    throw new RetryableEvaluationError(
      `the account's ${model} rate limits are taken by running jobs for the next ${retryAfterSeconds} s`,
      { retryAfterSeconds, throttled: true },
    );
  }
}

/** The requests `compareJudgeModes` makes: each definition alone (the first writes the cache), and each grouped unit. */
export function judgeModeRequests(definitions: MetricDefinition[]): PlaygroundRequest[] {
  const isolated = definitions.map((definition, i) => ({ definitions: [definition], cacheWarm: i > 0 }));
  const grouped = judgingUnits(definitions, groupingKey)
    .filter((unit) => unit.length > 1)
    .map((unit) => ({ definitions: unit, cacheWarm: false }));
  return [...isolated, ...grouped];
}

interface JudgeModeDeps {
  evaluate: EvaluateItem;
  evaluateGroup: EvaluateGroup;
}

const defaultDeps: JudgeModeDeps = { evaluate: evaluateByCalculationType, evaluateGroup: judgeTogether };

/**
 * Each definition judged on its own: the first alone, so it writes the transcript to the
 * prompt cache, then the rest at once, reading it (the playground answers within 30 s).
 */
async function judgeIsolated(definitions: MetricDefinition[], call: Call, deps: JudgeModeDeps) {
  const [first, ...rest] = definitions;
  if (!first) return [];
  const firstOutcome = await deps.evaluate(first, call);
  return [firstOutcome, ...(await mapLimit(rest, PLAYGROUND_PARALLEL_CALLS, (d) => deps.evaluate(d, call)))];
}

/** Model calls the playground makes at once. */
const PLAYGROUND_PARALLEL_CALLS = 8;

/** As a grouped job judges them: the definitions that share a grouping key together, the rest alone. */
async function judgeGrouped(definitions: MetricDefinition[], call: Call, deps: JudgeModeDeps) {
  const outcomes: EvaluationOutcome[] = [];
  for (const unit of judgingUnits([...definitions.entries()], ([, definition]) => groupingKey(definition))) {
    const judged =
      unit.length === 1
        ? [await deps.evaluate(unit[0]?.[1] as MetricDefinition, call)]
        : await deps.evaluateGroup(
            unit.map(([, definition]) => definition),
            call,
          );
    for (const [k, [index]] of unit.entries()) outcomes[index] = judged[k] as EvaluationOutcome;
  }
  return outcomes;
}

const sameAnswer = (a: EvaluationOutcome, b: EvaluationOutcome) =>
  a.captureStatus === b.captureStatus && JSON.stringify(a.value) === JSON.stringify(b.value);

const totalUsage = (outcomes: EvaluationOutcome[]) =>
  outcomes.reduce((sum, outcome) => addUsage(sum, outcome.usage ?? emptyUsage()), emptyUsage());
const totalCost = (outcomes: EvaluationOutcome[]) =>
  Math.round(outcomes.reduce((sum, outcome) => sum + (outcome.estimatedCostUsd ?? 0), 0) * 1e6) / 1e6;

/** The definitions judged on the call in both modes, per metric side by side, with what each mode cost. */
export async function compareJudgeModes(definitions: MetricDefinition[], call: Call, deps = defaultDeps) {
  // The grouped request reads the transcript uncached anyway: it runs beside the isolated ones.
  const [isolated, grouped] = await Promise.all([
    judgeIsolated(definitions, call, deps),
    judgeGrouped(definitions, call, deps),
  ]);
  const computedAt = new Date().toISOString();
  const result = (definition: MetricDefinition, outcome: EvaluationOutcome) => ({
    callId: call.id,
    metricDefinitionId: definition.id,
    metricVersion: definition.version,
    computedAt,
    ...outcome,
  });
  return {
    callId: call.id,
    metrics: definitions.map((definition, i) => {
      const [alone, together] = [isolated[i], grouped[i]] as [EvaluationOutcome, EvaluationOutcome];
      return {
        slug: definition.slug,
        isolated: result(definition, alone),
        grouped: result(definition, together),
        sameAnswer: sameAnswer(alone, together),
      };
    }),
    usage: { isolated: totalUsage(isolated), grouped: totalUsage(grouped) },
    estimatedCostUsd: { isolated: totalCost(isolated), grouped: totalCost(grouped) },
  };
}
