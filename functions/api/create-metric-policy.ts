import { apiRoute } from "../../shared/http/api-handler.ts";
import { createPolicySchema } from "../../shared/schemas/policy.ts";
import { createPolicy } from "../../shared/store/policies.ts";

export const handler = apiRoute({ body: createPolicySchema, successStatus: 201 }, async ({ principal, body }) => ({
  data: await createPolicy(principal.orgId, body),
}));
