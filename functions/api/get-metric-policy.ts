import { z } from "zod";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { notFound } from "../../shared/http/errors.ts";
import { getPolicy } from "../../shared/store/policies.ts";

export const handler = apiRoute({ path: z.object({ policyId: z.string().min(1) }) }, async ({ principal, path }) => {
  const policy = await getPolicy(principal.orgId, path.policyId);
  if (!policy) throw notFound("Metric policy", path.policyId);
  return { data: policy };
});
