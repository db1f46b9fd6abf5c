import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { createBackfill } from "../../shared/store/backfills.ts";

export const handler = apiRoute(contract["POST /v1/backfills"], async ({ principal, body }) =>
  createBackfill(principal.orgId, body),
);
