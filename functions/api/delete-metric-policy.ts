import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { deletePolicy } from "../../shared/store/policies.ts";

export const handler = apiRoute(contract["DELETE /v1/metric/policies/{policyId}"], async ({ principal, path }) => {
  await deletePolicy(principal.orgId, path.policyId);
  return { id: path.policyId, deleted: true };
});
