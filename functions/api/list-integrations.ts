import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { listIntegrations } from "../../shared/store/integrations.ts";

export const handler = apiRoute(contract["GET /v1/integrations"], ({ principal, query }) =>
  listIntegrations(principal.orgId, query),
);
