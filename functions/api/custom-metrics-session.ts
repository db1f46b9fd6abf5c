import { z } from "zod";
import { session } from "../../shared/analytics/api.ts";
import { apiRoute } from "../../shared/http/api-handler.ts";

export const handler = apiRoute({ path: z.object({ callId: z.string().min(1) }) }, ({ principal, path }) =>
  session(principal.orgId, path.callId),
);
