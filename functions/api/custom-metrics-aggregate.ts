import { aggregate, rangeQuerySchema } from "../../shared/analytics/api.ts";
import { apiRoute } from "../../shared/http/api-handler.ts";

export const handler = apiRoute({ query: rangeQuerySchema }, ({ principal, query }) =>
  aggregate(principal.orgId, query),
);
