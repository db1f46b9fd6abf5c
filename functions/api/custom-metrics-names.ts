import { z } from "zod";
import { names } from "../../shared/analytics/api.ts";
import { apiRoute } from "../../shared/http/api-handler.ts";

export const handler = apiRoute(
  { query: z.object({ agentId: z.string().min(1).optional() }) },
  ({ principal, query }) => names(principal.orgId, query.agentId),
);
