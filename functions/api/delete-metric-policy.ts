import { z } from "zod";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { deletePolicy } from "../../shared/store/policies.ts";

export const handler = apiRoute({ path: z.object({ policyId: z.string().min(1) }) }, async ({ principal, path }) => {
  await deletePolicy(principal.orgId, path.policyId);
  return { data: { id: path.policyId, deleted: true } };
});
