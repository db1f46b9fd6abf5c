import { withLambdaContext } from "../../shared/logger.ts";
import { defaultReconcilerDeps, reconcileJobs } from "../../shared/pipeline/reconcile.ts";

/** Scheduled backstop: repairs running jobs that stopped making progress (see reconcile.ts). */
export const handler = withLambdaContext(async () => {
  await reconcileJobs(defaultReconcilerDeps());
});
