/**
 * `node bench/limits-main.ts [--quick]`: figure 8 (the pipeline under the account's rate
 * limits) alone, on a harness of its own, for work on the limiter between full runs. The
 * full benchmark runs it after the pipeline series, so its figures there may differ a little.
 */
import { BENCH_CONCURRENCY, startPipelineHarness } from "./harness.ts";
import { measureRateLimits, rateLimitPlanFor } from "./rate-limits.ts";
import { printFigures } from "./report.ts";

const harness = await startPipelineHarness({ concurrency: BENCH_CONCURRENCY });
const limits = await measureRateLimits(harness, rateLimitPlanFor(process.argv.includes("--quick")));
await harness.stop();
printFigures(limits.figures);
if (limits.problems.length > 0) console.error(`\nCOUNT ERRORS:\n${limits.problems.join("\n")}`);
process.exit(limits.problems.length > 0 ? 1 : 0);
