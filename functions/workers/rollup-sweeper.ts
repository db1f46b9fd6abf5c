import { applyRollupDeltas, staleDeltas } from "../../shared/analytics/deltas.ts";
import { withLambdaContext } from "../../shared/logger.ts";

/** Scheduled backstop: applies rollup deltas the stream consumer left behind. */
export const handler = withLambdaContext(async () => applyRollupDeltas(await staleDeltas()));
