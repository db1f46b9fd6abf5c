import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { recordValues } from "../../shared/store/recorded-values.ts";

export const handler = apiRoute(contract["POST /v1/custom-metrics/values"], ({ principal, body }) =>
  recordValues(principal.orgId, body.values),
);
