import { randomUUID } from "node:crypto";
import { assertWithinBudget } from "../../shared/budget.ts";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { llmFailureAsHttp, withinPlaygroundDeadline } from "../../shared/http/llm-errors.ts";
import { evaluateByCalculationType } from "../../shared/pipeline/evaluators.ts";
import { admitPlaygroundCalls, playgroundCall, resolveDefinition } from "../../shared/playground/evaluate-now.ts";
import { addSpend } from "../../shared/store/spend.ts";

/** Evaluates one definition on one call synchronously; nothing is stored. */
export const handler = apiRoute(contract["POST /v1/metric/playground"], async ({ principal, body }) => {
  const [definition, call] = await Promise.all([
    resolveDefinition(principal.orgId, body.metric),
    playgroundCall(principal.orgId, body),
  ]);
  await assertWithinBudget(principal.orgId, 0, "This playground run");
  const outcome = await withinPlaygroundDeadline(
    admitPlaygroundCalls(principal.orgId, call, [{ definitions: [definition], cacheWarm: false }])
      .then(() => evaluateByCalculationType(definition, call))
      .catch(llmFailureAsHttp),
  );
  await addSpend(principal.orgId, randomUUID(), outcome.estimatedCostUsd ?? 0);
  return {
    callId: call.id,
    metricDefinitionId: definition.id,
    metricVersion: definition.version,
    computedAt: new Date().toISOString(),
    ...outcome,
  };
});
