import { applyRollupDeltas, staleDeltas } from "../../shared/analytics/deltas.ts";
import { withLambdaContext } from "../../shared/logger.ts";
import { purgeLateCallValues } from "../../shared/store/call-deletion.ts";

/**
 * Scheduled backstop: applies rollup deltas the stream consumer left behind, and removes
 * values recorded after their call was deleted (their deltas are applied by the next run).
 */
export const handler = withLambdaContext(async () => {
  const lateValuesRemoved = await purgeLateCallValues();
  return { ...(await applyRollupDeltas(await staleDeltas())), lateValuesRemoved };
});
