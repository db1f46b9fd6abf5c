import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { updateIntegration } from "../../shared/store/integrations.ts";

export const handler = apiRoute(contract["PUT /v1/integrations/{integrationId}"], ({ principal, path, body }) =>
  updateIntegration(principal.orgId, path.integrationId, body),
);
