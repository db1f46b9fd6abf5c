import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { importPlatformCall } from "../../shared/integrations/ingest.ts";

export const handler = apiRoute(contract["POST /v1/retell/call"], ({ principal, body }) =>
  importPlatformCall(principal.orgId, "retell", body),
);
