import { assertModelsAllowed } from "../../shared/allowed-models.ts";
import { notFound } from "../../shared/errors.ts";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { getMetric, updateMetric } from "../../shared/store/metrics.ts";

export const handler = apiRoute(
  contract["PUT /v1/metric/definitions/{idOrSlug}"],
  async ({ principal, path, body }) => {
    const current = await getMetric(principal.orgId, path.idOrSlug);
    if (!current) throw notFound("Metric definition", path.idOrSlug);
    await assertModelsAllowed(principal.orgId, [{ ...current, ...body }]);
    return await updateMetric(principal.orgId, current, body);
  },
);
