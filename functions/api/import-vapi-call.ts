import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { importPlatformCall } from "../../shared/integrations/ingest.ts";
import { getCallSummary } from "../../shared/store/calls.ts";

export const handler = apiRoute(contract["POST /v1/vapi/call"], async ({ principal, body }) => {
  const { callId } = await importPlatformCall(principal.orgId, "vapi", body);
  return getCallSummary(principal.orgId, callId);
});
