import { timeseries, timeseriesQuerySchema } from "../../shared/analytics/api.ts";
import { apiRoute } from "../../shared/http/api-handler.ts";

export const handler = apiRoute({ query: timeseriesQuerySchema }, ({ principal, query }) =>
  timeseries(principal.orgId, query),
);
