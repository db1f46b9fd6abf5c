import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { notFound } from "../../shared/http/errors.ts";
import { getMetric, updateMetric } from "../../shared/store/metrics.ts";

export const handler = apiRoute(
  contract["PUT /v1/metric/definitions/{idOrSlug}"],
  async ({ principal, path, body }) => {
    const current = await getMetric(principal.orgId, path.idOrSlug);
    if (!current) throw notFound("Metric definition", path.idOrSlug);
    return { data: await updateMetric(principal.orgId, current, body) };
  },
);
