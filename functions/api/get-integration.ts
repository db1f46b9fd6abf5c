import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { getIntegration } from "../../shared/store/integrations.ts";

export const handler = apiRoute(contract["GET /v1/integrations/{integrationId}"], ({ principal, path }) =>
  getIntegration(principal.orgId, path.integrationId),
);
