import { notFound } from "../../shared/errors.ts";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { getMetric } from "../../shared/store/metrics.ts";
import { reviewValue } from "../../shared/store/reviews.ts";

export const handler = apiRoute(
  contract["PUT /v1/metric/collection-jobs/{jobId}/metric-values/{callId}/{metricId}/review"],
  async ({ principal, path, body }) => {
    // The metric by id or slug, as everywhere else.
    const definition = await getMetric(principal.orgId, path.metricId);
    if (!definition) throw notFound("Metric definition", path.metricId);
    return reviewValue(principal.orgId, principal.keyId, { ...path, metricId: definition.id }, body);
  },
);
