import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { listPolicies } from "../../shared/store/policies.ts";

export const handler = apiRoute(contract["GET /v1/metric/policies"], ({ principal, query }) =>
  listPolicies(principal.orgId, query),
);
