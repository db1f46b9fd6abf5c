import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { listCalls, listCallsByExternalId } from "../../shared/store/calls.ts";

export const handler = apiRoute(contract["GET /v1/call"], ({ principal, query }) =>
  query.externalId
    ? listCallsByExternalId(principal.orgId, query.externalId)
    : listCalls(principal.orgId, query.limit, query.after),
);
