import type { SQSBatchResponse, SQSEvent } from "aws-lambda";
import { logger } from "../../shared/logger.ts";
import { dispatchPage } from "../../shared/pipeline/dispatch.ts";
import { dispatchMessageSchema } from "../../shared/schemas/job.ts";

export const handler = async (event: SQSEvent): Promise<SQSBatchResponse> => {
  const batchItemFailures: SQSBatchResponse["batchItemFailures"] = [];
  for (const record of event.Records) {
    try {
      await dispatchPage(dispatchMessageSchema.parse(JSON.parse(record.body)));
    } catch (error) {
      logger.error("Dispatch failed; page will be retried", { messageId: record.messageId, error: error as Error });
      batchItemFailures.push({ itemIdentifier: record.messageId });
    }
  }
  return { batchItemFailures };
};
