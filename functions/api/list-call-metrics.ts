import { z } from "zod";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { notFound } from "../../shared/http/errors.ts";
import { pageQuerySchema } from "../../shared/http/pagination.ts";
import { callExists } from "../../shared/store/calls.ts";
import { listCallValues } from "../../shared/store/values.ts";

export const handler = apiRoute(
  {
    path: z.object({ callId: z.string().min(1) }),
    query: pageQuerySchema(500, 100).extend({ status: z.enum(["success", "all"]).default("all") }),
  },
  async ({ principal, path, query }) => {
    if (!(await callExists(principal.orgId, path.callId))) throw notFound("Call", path.callId);
    return listCallValues(principal.orgId, path.callId, query);
  },
);
