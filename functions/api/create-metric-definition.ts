import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { createMetric } from "../../shared/store/metrics.ts";

export const handler = apiRoute(contract["POST /v1/metric/definitions"], async ({ principal, body }) =>
  createMetric(principal.orgId, body),
);
