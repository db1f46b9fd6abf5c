import { z } from "zod";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { notFound } from "../../shared/http/errors.ts";
import { getBackfill } from "../../shared/store/backfills.ts";

export const handler = apiRoute({ path: z.object({ backfillId: z.string().min(1) }) }, async ({ principal, path }) => {
  const backfill = await getBackfill(principal.orgId, path.backfillId);
  if (!backfill) throw notFound("Backfill", path.backfillId);
  return { data: backfill };
});
