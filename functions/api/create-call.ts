import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { createCall } from "../../shared/store/calls.ts";

export const handler = apiRoute(contract["POST /v1/call"], async ({ principal, body }) =>
  createCall(principal.orgId, body),
);
