/**
 * One stream consumer for several kinds of records. DynamoDB Streams serves at most two
 * readers per shard before throttling them, so consumers that want the same latency
 * share one event source mapping: each record goes to the handler of its entity and
 * event, every handler being idempotent on its own.
 */
import type { DynamoDBBatchResponse, DynamoDBRecord } from "aws-lambda";
import { logger } from "../logger.ts";
import type { StreamEventName } from "../stream-entities.ts";

export type StreamRecordHandler = (records: DynamoDBRecord[]) => Promise<DynamoDBBatchResponse>;

export interface StreamRoute {
  /** Names the route in logs. */
  name: string;
  eventName: StreamEventName;
  /** The `entity` attribute of the record's new image. */
  entity: string;
  handle: StreamRecordHandler;
}

/** The route a record belongs to, if any (the event filter lets only routed records through). */
function routeOf(record: DynamoDBRecord, routes: readonly StreamRoute[]): StreamRoute | undefined {
  const entity = record.dynamodb?.NewImage?.entity?.S;
  return routes.find((route) => route.eventName === record.eventName && route.entity === entity);
}

const sequenceOf = (record: DynamoDBRecord | undefined) => record?.dynamodb?.SequenceNumber ?? "";

/** Sequence numbers are decimal strings of any length: compared as numbers, not as text. */
function earlier(a: string, b: string): boolean {
  return BigInt(a) < BigInt(b);
}

const isSequenceNumber = (value: string) => /^\d+$/.test(value);

/**
 * Hands each route its records, in stream order, all routes at once. Lambda resumes a
 * failed batch at the reported record and delivers everything after it again, to every
 * route: so the answer is the earliest failure of any route (records another route had
 * already handled come back to it, which its idempotence absorbs).
 */
export async function routeStreamRecords(
  records: DynamoDBRecord[],
  routes: readonly StreamRoute[],
): Promise<DynamoDBBatchResponse> {
  const byRoute = new Map<StreamRoute, DynamoDBRecord[]>();
  for (const record of records) {
    const route = routeOf(record, routes);
    if (!route) continue;
    const routed = byRoute.get(route) ?? [];
    routed.push(record);
    byRoute.set(route, routed);
  }
  const failures = await Promise.all(
    [...byRoute].map(async ([route, routed]): Promise<string[]> => {
      try {
        const response = await route.handle(routed);
        return (response.batchItemFailures ?? []).map(({ itemIdentifier }) =>
          // An identifier Lambda could not place fails the whole batch: report the route's first record.
          isSequenceNumber(itemIdentifier) ? itemIdentifier : sequenceOf(routed[0]),
        );
      } catch (error) {
        logger.error("Stream route failed; its records will be retried", {
          route: route.name,
          records: routed.length,
          error: error as Error,
        });
        return [sequenceOf(routed[0])];
      }
    }),
  );
  const earliest = failures.flat().reduce<string | undefined>((first, candidate) => {
    if (!isSequenceNumber(candidate)) return first;
    return first === undefined || earlier(candidate, first) ? candidate : first;
  }, undefined);
  return { batchItemFailures: earliest === undefined ? [] : [{ itemIdentifier: earliest }] };
}
