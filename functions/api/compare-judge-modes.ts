import { randomUUID } from "node:crypto";
import { assertWithinBudget } from "../../shared/budget.ts";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { llmFailureAsHttp, withinPlaygroundDeadline } from "../../shared/http/llm-errors.ts";
import {
  admitPlaygroundCalls,
  compareJudgeModes,
  judgeModeRequests,
  playgroundCall,
  resolveDefinition,
} from "../../shared/playground/evaluate-now.ts";
import { addSpend } from "../../shared/store/spend.ts";

/** Judges one call with several definitions in both judge modes, side by side; nothing is stored. */
export const handler = apiRoute(contract["POST /v1/metric/playground/judge-modes"], async ({ principal, body }) => {
  const [definitions, call] = await Promise.all([
    Promise.all(body.metrics.map((metric, i) => resolveDefinition(principal.orgId, metric, `body.metrics.${i}`))),
    playgroundCall(principal.orgId, body),
  ]);
  await assertWithinBudget(principal.orgId, 0, "This playground run");
  const compared = await withinPlaygroundDeadline(
    admitPlaygroundCalls(principal.orgId, call, judgeModeRequests(definitions))
      .then(() => compareJudgeModes(definitions, call))
      .catch(llmFailureAsHttp),
  );
  const { isolated, grouped } = compared.estimatedCostUsd;
  await addSpend(principal.orgId, randomUUID(), isolated + grouped);
  return compared;
});
