import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { listMetrics } from "../../shared/store/metrics.ts";

export const handler = apiRoute(contract["GET /v1/metric/definitions"], ({ principal, query }) =>
  listMetrics(principal.orgId, query.limit, query.after, query.archived === "true"),
);
