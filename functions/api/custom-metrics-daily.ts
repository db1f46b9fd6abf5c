import { daily } from "../../shared/analytics/api.ts";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";

export const handler = apiRoute(contract["GET /v1/custom-metrics/daily"], ({ principal, query }) =>
  daily(principal.orgId, query),
);
