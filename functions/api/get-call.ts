import { z } from "zod";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { notFound } from "../../shared/http/errors.ts";
import { getCall } from "../../shared/store/calls.ts";

export const handler = apiRoute({ path: z.object({ callId: z.string().min(1) }) }, async ({ principal, path }) => {
  const call = await getCall(principal.orgId, path.callId);
  if (!call) throw notFound("Call", path.callId);
  return { data: call };
});
