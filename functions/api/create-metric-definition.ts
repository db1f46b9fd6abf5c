import { apiRoute } from "../../shared/http/api-handler.ts";
import { createMetricSchema } from "../../shared/schemas/metric.ts";
import { createMetric } from "../../shared/store/metrics.ts";

export const handler = apiRoute({ body: createMetricSchema, successStatus: 201 }, async ({ principal, body }) => ({
  data: await createMetric(principal.orgId, body),
}));
