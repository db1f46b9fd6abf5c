/**
 * The table's stream, fetched once for every local stream consumer: a buffer per shard that
 * each consumer reads with its own position, trimmed once all have handled a record, and
 * recovering from expired iterators.
 */
import { DescribeTableCommand, type DynamoDBClient } from "@aws-sdk/client-dynamodb";
import {
  DescribeStreamCommand,
  type DynamoDBStreamsClient,
  GetShardIteratorCommand,
  type Shard,
  type ShardIteratorType,
} from "@aws-sdk/client-dynamodb-streams";
import type { DynamoDBRecord } from "aws-lambda";
import type { RuntimeLogger } from "./invoke.ts";
import { getRecordsAsJson, toDynamoDBRecord } from "./stream-wire.ts";

/** GetRecords returns at most 1,000 records. */
const MAX_GET_RECORDS = 1_000;

export function errorName(error: unknown): string {
  return error instanceof Error ? error.name : "";
}

async function getStreamArn(dynamodb: DynamoDBClient, tableName: string): Promise<string> {
  const { Table } = await dynamodb.send(new DescribeTableCommand({ TableName: tableName }));
  if (!Table?.LatestStreamArn) throw new Error(`Table ${tableName} has no stream`);
  return Table.LatestStreamArn;
}

/** A shard's records as far as they were fetched; `records[i]` is the shard's record number `first + i`. */
interface ShardBuffer {
  records: DynamoDBRecord[];
  first: number;
  /** Where the next fetch continues; unset before the first fetch and after an expired iterator. */
  iterator?: string;
  /** The last record fetched: an expired iterator is re-acquired after it. */
  lastSequenceNumber?: string;
  /** The shard is closed and every record of it fetched. */
  ended: boolean;
  fetching?: Promise<void>;
  /** A fetch found nothing new: until then, readers are answered from the buffer. */
  quietUntil: number;
  /** Per consumer: the first record it may still read (everything before is handled). */
  handledUpTo: Map<string, number>;
}

export interface StreamPage {
  records: DynamoDBRecord[];
  /** The shard is closed and no record after this page remains. */
  ended: boolean;
}

/**
 * The table's stream as every consumer reads it. Lambda runs one event source mapping per
 * consumer, each reading the stream on its own; locally those reads and the conversion of
 * each record would multiply the engine's and this process's work by the number of
 * consumers. So each shard is fetched once, into a buffer that every
 * consumer reads at its own pace, with its own batches, filter, retries and checkpoint.
 * Records are dropped from the buffer once every consumer has handled them.
 */
export interface SharedStream {
  streamArn: string;
  listShards(): Promise<Shard[]>;
  /** Up to `limit` records of the shard from record number `from`, fetching when none are buffered. */
  read(shardId: string, from: number, limit: number): Promise<StreamPage>;
  /** The consumer has handled every record before `position` of the shard. */
  handled(shardId: string, consumerId: string, position: number): void;
  /** Aborts requests in flight, so that consumers waiting for them stop at once. */
  close(): void;
}

export async function openSharedStream(options: {
  tableName: string;
  dynamodb: DynamoDBClient;
  streams: DynamoDBStreamsClient;
  region: string;
  /** Every consumer that will read: a record stays buffered until each has handled it. */
  consumerIds: string[];
  /** After a fetch found nothing new, reads within this time do not fetch again. */
  quietMs: number;
  logger: RuntimeLogger;
}): Promise<SharedStream> {
  const { streams, region, logger } = options;
  const streamArn = await getStreamArn(options.dynamodb, options.tableName);
  const shards = new Map<string, ShardBuffer>();
  let listing: Promise<Shard[]> | undefined;
  const closing = new AbortController();
  const { signal } = closing;

  const bufferOf = (shardId: string): ShardBuffer => {
    let shard = shards.get(shardId);
    if (!shard) {
      shard = { records: [], first: 0, ended: false, quietUntil: 0, handledUpTo: new Map() };
      shards.set(shardId, shard);
    }
    return shard;
  };

  async function iteratorOf(shardId: string, shard: ShardBuffer): Promise<string> {
    const type: ShardIteratorType = shard.lastSequenceNumber ? "AFTER_SEQUENCE_NUMBER" : "TRIM_HORIZON";
    const { ShardIterator } = await streams.send(
      new GetShardIteratorCommand({
        StreamArn: streamArn,
        ShardId: shardId,
        ShardIteratorType: type,
        SequenceNumber: shard.lastSequenceNumber,
      }),
      { abortSignal: signal },
    );
    if (!ShardIterator) throw new Error(`No iterator for shard ${shardId}`);
    return ShardIterator;
  }

  async function fetchMore(shardId: string, shard: ShardBuffer): Promise<void> {
    try {
      shard.iterator ??= await iteratorOf(shardId, shard);
      const page = await getRecordsAsJson(streams, { ShardIterator: shard.iterator, Limit: MAX_GET_RECORDS }, signal);
      const records = (page.Records ?? []).map((record) => toDynamoDBRecord(record, streamArn, region));
      shard.records.push(...records);
      shard.lastSequenceNumber = records.at(-1)?.dynamodb?.SequenceNumber ?? shard.lastSequenceNumber;
      shard.iterator = page.NextShardIterator;
      if (!page.NextShardIterator) shard.ended = true;
      if (records.length === 0) shard.quietUntil = Date.now() + options.quietMs;
    } catch (error) {
      const name = errorName(error);
      if (name === "ExpiredIteratorException") {
        shard.iterator = undefined; // re-acquired after the last record fetched
        return;
      }
      if (name === "TrimmedDataAccessException") {
        logger.error(`Records of shard ${shardId} were trimmed; resuming at the trim horizon`);
        shard.iterator = undefined;
        shard.lastSequenceNumber = undefined;
        return;
      }
      throw error;
    }
  }

  return {
    streamArn,
    listShards() {
      // Consumers look for shards on their own schedules; one listing answers those that coincide.
      listing ??= (async () => {
        const found: Shard[] = [];
        let exclusiveStartShardId: string | undefined;
        do {
          const { StreamDescription } = await streams.send(
            new DescribeStreamCommand({ StreamArn: streamArn, ExclusiveStartShardId: exclusiveStartShardId }),
            { abortSignal: signal },
          );
          found.push(...(StreamDescription?.Shards ?? []));
          exclusiveStartShardId = StreamDescription?.LastEvaluatedShardId;
        } while (exclusiveStartShardId);
        return found;
      })().finally(() => {
        listing = undefined;
      });
      return listing;
    },
    async read(shardId, from, limit) {
      const shard = bufferOf(shardId);
      const nothingBuffered = from >= shard.first + shard.records.length;
      if (nothingBuffered && !shard.ended && Date.now() >= shard.quietUntil) {
        shard.fetching ??= fetchMore(shardId, shard).finally(() => {
          shard.fetching = undefined;
        });
        await shard.fetching;
      }
      if (from < shard.first) throw new Error(`Shard ${shardId}: record ${from} was dropped before it was handled`);
      const records = shard.records.slice(from - shard.first, from - shard.first + limit);
      return { records, ended: shard.ended && from + records.length >= shard.first + shard.records.length };
    },
    handled(shardId, consumerId, position) {
      const shard = bufferOf(shardId);
      shard.handledUpTo.set(consumerId, position);
      const everyone = options.consumerIds.map((id) => shard.handledUpTo.get(id) ?? shard.first);
      const drop = Math.min(...everyone) - shard.first;
      if (drop > 0) {
        shard.records.splice(0, drop);
        shard.first += drop;
      }
      if (shard.ended && shard.records.length === 0) shards.delete(shardId);
    },
    close: () => closing.abort(),
  };
}
