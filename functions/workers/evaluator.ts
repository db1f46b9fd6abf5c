import type { SQSEvent } from "aws-lambda";
import { defaultEvaluatorDeps, type EvaluatorDeps, processWorkBatch } from "../../shared/pipeline/evaluate.ts";

/** Tests build the handler with injected evaluation; Lambda uses the defaults. */
export const createHandler = (deps: EvaluatorDeps) => (event: SQSEvent) => processWorkBatch(event.Records, deps);

export const handler = createHandler(defaultEvaluatorDeps);
