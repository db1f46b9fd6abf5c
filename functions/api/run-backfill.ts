import { runBackfill } from "../../shared/backfills/run.ts";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";

/** Runs a backfill now: 201 with the run (its job, or nothing-to-do); 409 while one is running. */
export const handler = apiRoute(contract["POST /v1/backfills/{backfillId}/run"], async ({ principal, path }) =>
  runBackfill(principal.orgId, path.backfillId, "manual"),
);
