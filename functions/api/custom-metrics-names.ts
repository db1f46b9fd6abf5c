import { names } from "../../shared/analytics/api.ts";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";

export const handler = apiRoute(contract["GET /v1/custom-metrics/names"], ({ principal, query }) =>
  names(principal.orgId, query.agentId),
);
