import { z } from "zod";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { deleteBackfill } from "../../shared/store/backfills.ts";

export const handler = apiRoute({ path: z.object({ backfillId: z.string().min(1) }) }, async ({ principal, path }) => {
  await deleteBackfill(principal.orgId, path.backfillId);
  return { data: { id: path.backfillId, deleted: true } };
});
