import { runDueBackfills } from "../../shared/backfills/run.ts";
import { withLambdaContext } from "../../shared/logger.ts";

/** Scheduled every minute: runs the backfills whose schedule is due. */
export const handler = withLambdaContext(async () => ({ runs: await runDueBackfills() }));
