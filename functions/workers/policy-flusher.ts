import { withLambdaContext } from "../../shared/logger.ts";
import { flushDuePolicyBatches } from "../../shared/policies/batches.ts";

/** Scheduled: turns every policy batch whose window has ended into a job. */
export const handler = withLambdaContext(async () => ({ flushed: await flushDuePolicyBatches() }));
