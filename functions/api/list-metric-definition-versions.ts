import { notFound } from "../../shared/errors.ts";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { getMetric, listMetricVersions } from "../../shared/store/metrics.ts";

export const handler = apiRoute(
  contract["GET /v1/metric/definitions/{idOrSlug}/versions"],
  async ({ principal, path, query }) => {
    const definition = await getMetric(principal.orgId, path.idOrSlug);
    if (!definition) throw notFound("Metric definition", path.idOrSlug);
    return listMetricVersions(principal.orgId, definition.id, query.limit, query.after);
  },
);
