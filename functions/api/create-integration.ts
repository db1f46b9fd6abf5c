import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { createIntegration } from "../../shared/store/integrations.ts";

export const handler = apiRoute(contract["POST /v1/integrations"], ({ principal, body }) =>
  createIntegration(principal.orgId, body),
);
