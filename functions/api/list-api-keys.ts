import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { listApiKeys } from "../../shared/store/api-keys.ts";

export const handler = apiRoute(contract["GET /v1/api-keys"], ({ principal, query }) =>
  listApiKeys(principal.orgId, query),
);
