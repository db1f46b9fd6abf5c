import { notFound } from "../../shared/errors.ts";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { getCall } from "../../shared/store/calls.ts";

export const handler = apiRoute(contract["GET /v1/call/{callId}"], async ({ principal, path }) => {
  const call = await getCall(principal.orgId, path.callId);
  if (!call) throw notFound("Call", path.callId);
  return call;
});
