import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { updateOrganizationSettings } from "../../shared/store/organizations.ts";

export const handler = apiRoute(contract["PUT /v1/organization/settings"], ({ principal, body }) =>
  updateOrganizationSettings(principal.orgId, body),
);
