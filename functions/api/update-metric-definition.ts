import { z } from "zod";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { notFound } from "../../shared/http/errors.ts";
import { updateMetricSchema } from "../../shared/schemas/metric.ts";
import { getMetric, updateMetric } from "../../shared/store/metrics.ts";

export const handler = apiRoute(
  { path: z.object({ idOrSlug: z.string().min(1) }), body: updateMetricSchema },
  async ({ principal, path, body }) => {
    const current = await getMetric(principal.orgId, path.idOrSlug);
    if (!current) throw notFound("Metric definition", path.idOrSlug);
    return { data: await updateMetric(principal.orgId, current, body) };
  },
);
