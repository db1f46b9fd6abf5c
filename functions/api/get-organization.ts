import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { getOrganization } from "../../shared/store/organizations.ts";

export const handler = apiRoute(contract["GET /v1/organization"], ({ principal }) => getOrganization(principal.orgId));
