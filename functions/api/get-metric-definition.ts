import { z } from "zod";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { notFound } from "../../shared/http/errors.ts";
import { getMetric } from "../../shared/store/metrics.ts";

export const handler = apiRoute({ path: z.object({ idOrSlug: z.string().min(1) }) }, async ({ principal, path }) => {
  const definition = await getMetric(principal.orgId, path.idOrSlug);
  if (!definition) throw notFound("Metric definition", path.idOrSlug);
  return { data: definition };
});
