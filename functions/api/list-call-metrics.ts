import { notFound } from "../../shared/errors.ts";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { callExists } from "../../shared/store/calls.ts";
import { listCallValuesByMetric } from "../../shared/store/values.ts";

export const handler = apiRoute(contract["GET /v1/call/{callId}/metrics"], async ({ principal, path, query }) => {
  if (!(await callExists(principal.orgId, path.callId))) throw notFound("Call", path.callId);
  return listCallValuesByMetric(principal.orgId, path.callId, query);
});
