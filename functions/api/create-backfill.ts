import { apiRoute } from "../../shared/http/api-handler.ts";
import { createBackfillSchema } from "../../shared/schemas/backfill.ts";
import { createBackfill } from "../../shared/store/backfills.ts";

export const handler = apiRoute({ body: createBackfillSchema, successStatus: 201 }, async ({ principal, body }) => ({
  data: await createBackfill(principal.orgId, body),
}));
