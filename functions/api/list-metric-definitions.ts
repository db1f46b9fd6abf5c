import { apiRoute } from "../../shared/http/api-handler.ts";
import { pageQuerySchema } from "../../shared/http/pagination.ts";
import { listMetrics } from "../../shared/store/metrics.ts";

export const handler = apiRoute({ query: pageQuerySchema(100, 20) }, ({ principal, query }) =>
  listMetrics(principal.orgId, query.limit, query.after),
);
