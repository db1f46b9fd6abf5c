import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { listBackfills } from "../../shared/store/backfills.ts";

export const handler = apiRoute(contract["GET /v1/backfills"], ({ principal, query }) =>
  listBackfills(principal.orgId, query),
);
