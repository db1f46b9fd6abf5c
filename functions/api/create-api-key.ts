import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { createOrgApiKey } from "../../shared/store/api-keys.ts";

export const handler = apiRoute(contract["POST /v1/api-keys"], ({ principal, body }) =>
  createOrgApiKey(principal.orgId, body, principal.keyId),
);
