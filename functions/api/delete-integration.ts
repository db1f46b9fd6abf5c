import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { deleteIntegration } from "../../shared/store/integrations.ts";

export const handler = apiRoute(contract["DELETE /v1/integrations/{integrationId}"], ({ principal, path }) =>
  deleteIntegration(principal.orgId, path.integrationId),
);
