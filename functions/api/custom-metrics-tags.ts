import { z } from "zod";
import { tags } from "../../shared/analytics/api.ts";
import { apiRoute } from "../../shared/http/api-handler.ts";

const query = z.object({ metricName: z.string().min(1), agentId: z.string().min(1).optional() });

export const handler = apiRoute({ query }, ({ principal, query }) =>
  tags(principal.orgId, query.metricName, query.agentId),
);
