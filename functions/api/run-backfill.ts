import { z } from "zod";
import { runBackfill } from "../../shared/backfills/run.ts";
import { apiRoute } from "../../shared/http/api-handler.ts";

/** Runs a backfill now: 201 with the run (its job, or nothing-to-do); 409 while one is running. */
export const handler = apiRoute(
  { path: z.object({ backfillId: z.string().min(1) }), successStatus: 201 },
  async ({ principal, path }) => ({ data: await runBackfill(principal.orgId, path.backfillId, "manual") }),
);
