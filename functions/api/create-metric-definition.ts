import { assertModelsAllowed } from "../../shared/allowed-models.ts";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { createMetric } from "../../shared/store/metrics.ts";

export const handler = apiRoute(contract["POST /v1/metric/definitions"], async ({ principal, body }) => {
  await assertModelsAllowed(principal.orgId, [body]);
  return createMetric(principal.orgId, body);
});
