import { notFound } from "../../shared/errors.ts";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { getMetric, setMetricArchived } from "../../shared/store/metrics.ts";

export const handler = apiRoute(
  contract["POST /v1/metric/definitions/{idOrSlug}/archive"],
  async ({ principal, path }) => {
    const definition = await getMetric(principal.orgId, path.idOrSlug);
    if (!definition) throw notFound("Metric definition", path.idOrSlug);
    return setMetricArchived(principal.orgId, definition.id, true);
  },
);
