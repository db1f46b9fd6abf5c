import { z } from "zod";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { updateBackfillSchema } from "../../shared/schemas/backfill.ts";
import { updateBackfill } from "../../shared/store/backfills.ts";

export const handler = apiRoute(
  { path: z.object({ backfillId: z.string().min(1) }), body: updateBackfillSchema },
  async ({ principal, path, body }) => ({ data: await updateBackfill(principal.orgId, path.backfillId, body) }),
);
