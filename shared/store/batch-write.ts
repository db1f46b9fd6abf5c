/** BatchWriteItem puts over any number of items: 25 per request, a few requests in flight, unprocessed items retried. */
import { BatchWriteCommand, type BatchWriteCommandOutput } from "@aws-sdk/lib-dynamodb";
import { dynamo } from "../aws.ts";
import { chunked, mapLimit, sleep } from "../concurrency.ts";
import { tableName } from "./table.ts";

type Item = Record<string, unknown>;

const MAX_ITEMS_PER_REQUEST = 25;

async function putChunk(table: string, items: Item[]): Promise<void> {
  let pending: BatchWriteCommandOutput["UnprocessedItems"] = {
    [table]: items.map((Item) => ({ PutRequest: { Item } })),
  };
  for (let attempt = 0; pending?.[table]?.length; attempt++) {
    if (attempt > 10) throw new Error("BatchWriteItem kept returning unprocessed items");
    if (attempt > 0) await sleep(Math.min(1000, 25 * 2 ** attempt) * Math.random());
    const result: BatchWriteCommandOutput = await dynamo().send(new BatchWriteCommand({ RequestItems: pending }));
    pending = result.UnprocessedItems;
  }
}

/** Puts every item (unconditionally: a put of an existing key replaces it). */
export async function batchPut(items: Item[], options: { requestsInFlight?: number } = {}): Promise<void> {
  const table = tableName();
  await mapLimit(chunked(items, MAX_ITEMS_PER_REQUEST), options.requestsInFlight ?? 1, (chunk) =>
    putChunk(table, chunk),
  );
}
