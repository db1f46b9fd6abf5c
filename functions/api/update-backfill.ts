import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { updateBackfill } from "../../shared/store/backfills.ts";

export const handler = apiRoute(contract["PUT /v1/backfills/{backfillId}"], async ({ principal, path, body }) =>
  updateBackfill(principal.orgId, path.backfillId, body),
);
