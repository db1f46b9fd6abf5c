import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";

export const handler = apiRoute(contract["GET /v1/me"], async ({ principal }) => principal);
