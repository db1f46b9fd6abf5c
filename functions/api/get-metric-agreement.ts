import { notFound } from "../../shared/errors.ts";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { getMetric } from "../../shared/store/metrics.ts";
import { agreementReport } from "../../shared/store/reviews.ts";

export const handler = apiRoute(
  contract["GET /v1/metric/definitions/{idOrSlug}/agreement"],
  async ({ principal, path }) => {
    const definition = await getMetric(principal.orgId, path.idOrSlug);
    if (!definition) throw notFound("Metric definition", path.idOrSlug);
    return agreementReport(principal.orgId, definition);
  },
);
