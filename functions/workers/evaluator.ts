import { sqsBatch } from "../../shared/consumers.ts";
import { defaultEvaluatorDeps, type EvaluatorDeps, processWorkBatch } from "../../shared/pipeline/evaluate.ts";
import { workItemSchema } from "../../shared/schemas/job.ts";

/** Tests build the handler with injected evaluation; Lambda uses the defaults. */
export const createHandler = (deps: EvaluatorDeps) =>
  sqsBatch(workItemSchema, (messages, context) =>
    processWorkBatch(messages, { ...deps, remainingTimeMs: () => context.getRemainingTimeInMillis() }),
  );

export const handler = createHandler(defaultEvaluatorDeps);
