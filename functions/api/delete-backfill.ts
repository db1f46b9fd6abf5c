import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { deleteBackfill } from "../../shared/store/backfills.ts";

export const handler = apiRoute(contract["DELETE /v1/backfills/{backfillId}"], async ({ principal, path }) => {
  await deleteBackfill(principal.orgId, path.backfillId);
  return { id: path.backfillId, deleted: true };
});
