import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { listCalls, listCallsByExternalId, listMatchingCalls } from "../../shared/store/calls.ts";

export const handler = apiRoute(contract["GET /v1/call"], ({ principal, query }) => {
  const { externalId, limit, after, ...filter } = query;
  if (externalId) return listCallsByExternalId(principal.orgId, externalId);
  const filtered = Object.values(filter).some((value) => value !== undefined);
  return filtered ? listMatchingCalls(principal.orgId, filter, limit, after) : listCalls(principal.orgId, limit, after);
});
