import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { revokeApiKey } from "../../shared/store/api-keys.ts";

export const handler = apiRoute(contract["DELETE /v1/api-keys/{keyId}"], ({ principal, path }) =>
  revokeApiKey(principal.orgId, path.keyId, principal.keyId),
);
