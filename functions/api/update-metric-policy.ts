import { z } from "zod";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { updatePolicySchema } from "../../shared/schemas/policy.ts";
import { updatePolicy } from "../../shared/store/policies.ts";

export const handler = apiRoute(
  { path: z.object({ policyId: z.string().min(1) }), body: updatePolicySchema },
  async ({ principal, path, body }) => ({ data: await updatePolicy(principal.orgId, path.policyId, body) }),
);
