import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { updatePolicy } from "../../shared/store/policies.ts";

export const handler = apiRoute(contract["PUT /v1/metric/policies/{policyId}"], async ({ principal, path, body }) =>
  updatePolicy(principal.orgId, path.policyId, body),
);
