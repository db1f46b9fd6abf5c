import { runDueBackfills } from "../../shared/backfills/run.ts";

/** Scheduled every minute: runs the backfills whose schedule is due. */
export const handler = async () => ({ runs: await runDueBackfills() });
