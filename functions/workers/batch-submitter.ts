import { sqsBatch } from "../../shared/consumers.ts";
import { defaultLlmBatchDeps, submitBatchItems } from "../../shared/pipeline/llm-batches.ts";
import { workItemSchema } from "../../shared/schemas/job.ts";

/** Hands a batch-mode job's LLM items to the Message Batches API (see llm-batches.ts). */
export const handler = sqsBatch(workItemSchema, (messages) => submitBatchItems(messages, defaultLlmBatchDeps()));
