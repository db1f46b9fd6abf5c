import { notFound } from "../../shared/errors.ts";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { getPolicy } from "../../shared/store/policies.ts";

export const handler = apiRoute(contract["GET /v1/metric/policies/{policyId}"], async ({ principal, path }) => {
  const policy = await getPolicy(principal.orgId, path.policyId);
  if (!policy) throw notFound("Metric policy", path.policyId);
  return policy;
});
