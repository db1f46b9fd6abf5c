import { applyRollupDeltas, staleDeltas } from "../../shared/analytics/deltas.ts";

/** Scheduled backstop: applies rollup deltas the stream consumer left behind. */
export const handler = async () => applyRollupDeltas(await staleDeltas());
