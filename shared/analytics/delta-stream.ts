/** The stream side of rollup deltas: new delta items arrive here and are applied at once. */
import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import { unmarshall } from "@aws-sdk/util-dynamodb";
import type { DynamoDBBatchResponse, DynamoDBRecord } from "aws-lambda";
import { logger } from "../logger.ts";
import { applyRollupDeltas, toDelta } from "./deltas.ts";

export async function applyStreamedDeltas(records: DynamoDBRecord[]): Promise<DynamoDBBatchResponse> {
  const deltas = records.flatMap((record) => {
    const image = record.dynamodb?.NewImage;
    return image ? [toDelta(unmarshall(image as Record<string, AttributeValue>))] : [];
  });
  try {
    await applyRollupDeltas(deltas);
    return { batchItemFailures: [] };
  } catch (error) {
    // The whole batch comes back; deltas applied before the failure are skipped then.
    logger.error("Could not apply rollup deltas", { deltas: deltas.length, error: error as Error });
    return { batchItemFailures: [{ itemIdentifier: records[0]?.dynamodb?.SequenceNumber ?? "" }] };
  }
}
