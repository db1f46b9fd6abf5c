import { notFound } from "../../shared/errors.ts";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { deleteCall } from "../../shared/store/call-deletion.ts";

export const handler = apiRoute(contract["DELETE /v1/call/{callId}"], async ({ principal, path }) => {
  if (!(await deleteCall(principal.orgId, path.callId))) throw notFound("Call", path.callId);
  return { id: path.callId, deleted: true as const };
});
