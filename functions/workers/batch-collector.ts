import { withLambdaContext } from "../../shared/logger.ts";
import { collectBatches, defaultLlmBatchDeps } from "../../shared/pipeline/llm-batches.ts";

/** Scheduled: creates batches a submitter left, and records the results of ended batches (see llm-batches.ts). */
export const handler = withLambdaContext(async () => {
  await collectBatches(defaultLlmBatchDeps());
});
