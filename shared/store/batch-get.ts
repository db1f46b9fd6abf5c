/** BatchGetItem over any number of keys: 100 per request, a few requests in flight, unprocessed keys retried. */
import { BatchGetCommand, type BatchGetCommandInput, type BatchGetCommandOutput } from "@aws-sdk/lib-dynamodb";
import { dynamo } from "../aws.ts";
import { chunked, mapLimit, sleep } from "../concurrency.ts";
import { tableName } from "./table.ts";

type Key = { pk: string; sk: string };
type Item = Record<string, unknown>;

const MAX_KEYS_PER_REQUEST = 100;
const REQUESTS_IN_FLIGHT = 8;

export interface BatchGetOptions {
  /** Attributes to read (all when unset). */
  projection?: string[];
  /** Strongly consistent: sees every write acknowledged before the read. */
  consistent?: boolean;
  /** Requests of 100 keys in flight at once. */
  requestsInFlight?: number;
}

async function getChunk(keyChunk: Key[], { projection, consistent }: BatchGetOptions): Promise<Item[]> {
  const table = tableName();
  const found: Item[] = [];
  let pending: BatchGetCommandInput["RequestItems"] = {
    [table]: {
      Keys: keyChunk,
      ...(consistent ? { ConsistentRead: true } : {}),
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

export async function batchGet(keysToGet: Key[], options: BatchGetOptions = {}): Promise<Item[]> {
  const inFlight = options.requestsInFlight ?? REQUESTS_IN_FLIGHT;
  const found = await mapLimit(chunked(keysToGet, MAX_KEYS_PER_REQUEST), inFlight, (chunk) => getChunk(chunk, options));
  return found.flat();
}
