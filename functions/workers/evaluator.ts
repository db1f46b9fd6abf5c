import type { Context, SQSEvent } from "aws-lambda";
import { defaultEvaluatorDeps, type EvaluatorDeps, processWorkBatch } from "../../shared/pipeline/evaluate.ts";

/** Tests build the handler with injected evaluation; Lambda uses the defaults. */
export const createHandler = (deps: EvaluatorDeps) => (event: SQSEvent, context?: Context) =>
  processWorkBatch(event.Records, {
    ...deps,
    remainingTimeMs: context ? () => context.getRemainingTimeInMillis() : deps.remainingTimeMs,
  });

export const handler = createHandler(defaultEvaluatorDeps);
