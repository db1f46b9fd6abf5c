import { daily, rangeQuerySchema } from "../../shared/analytics/api.ts";
import { apiRoute } from "../../shared/http/api-handler.ts";

export const handler = apiRoute({ query: rangeQuerySchema }, ({ principal, query }) => daily(principal.orgId, query));
