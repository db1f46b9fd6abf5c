/** BatchGetItem over any number of keys: 100 per request, a few requests in flight, unprocessed keys retried. */
import { BatchGetCommand, type BatchGetCommandInput, type BatchGetCommandOutput } from "@aws-sdk/lib-dynamodb";
import { dynamo } from "../aws.ts";
import { config } from "../config.ts";

type Key = { pk: string; sk: string };
type Item = Record<string, unknown>;

const MAX_KEYS_PER_REQUEST = 100;
const REQUESTS_IN_FLIGHT = 8;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function getChunk(keyChunk: Key[], projection?: string[]): Promise<Item[]> {
  const table = config().tableName;
  const found: Item[] = [];
  let pending: BatchGetCommandInput["RequestItems"] = {
    [table]: {
      Keys: keyChunk,
      // Attribute names go through placeholders: several (e.g. "status") are reserved words.
      ...(projection
        ? {
            ProjectionExpression: projection.map((_, i) => `#p${i}`).join(", "),
            ExpressionAttributeNames: Object.fromEntries(projection.map((name, i) => [`#p${i}`, name])),
          }
        : {}),
    },
  };
  for (let attempt = 0; pending && Object.keys(pending).length > 0; attempt++) {
    if (attempt > 0) await sleep(Math.min(1000, 25 * 2 ** attempt) * Math.random());
    if (attempt > 10) throw new Error("BatchGetItem kept returning unprocessed keys");
    const result: BatchGetCommandOutput = await dynamo().send(new BatchGetCommand({ RequestItems: pending }));
    found.push(...((result.Responses?.[table] ?? []) as Item[]));
    pending = result.UnprocessedKeys;
  }
  return found;
}

export async function batchGet(keysToGet: Key[], projection?: string[]): Promise<Item[]> {
  const chunks: Key[][] = [];
  for (let i = 0; i < keysToGet.length; i += MAX_KEYS_PER_REQUEST) {
    chunks.push(keysToGet.slice(i, i + MAX_KEYS_PER_REQUEST));
  }
  const results: Item[] = [];
  let next = 0;
  const worker = async () => {
    while (next < chunks.length) {
      const chunk = chunks[next++] as Key[];
      results.push(...(await getChunk(chunk, projection)));
    }
  };
  await Promise.all(Array.from({ length: Math.min(REQUESTS_IN_FLIGHT, chunks.length) }, worker));
  return results;
}
