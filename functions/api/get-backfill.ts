import { notFound } from "../../shared/errors.ts";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { getBackfill } from "../../shared/store/backfills.ts";

export const handler = apiRoute(contract["GET /v1/backfills/{backfillId}"], async ({ principal, path }) => {
  const backfill = await getBackfill(principal.orgId, path.backfillId);
  if (!backfill) throw notFound("Backfill", path.backfillId);
  return backfill;
});
