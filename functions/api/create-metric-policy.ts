import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { createPolicy } from "../../shared/store/policies.ts";

export const handler = apiRoute(contract["POST /v1/metric/policies"], async ({ principal, body }) =>
  createPolicy(principal.orgId, body),
);
