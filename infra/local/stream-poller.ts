/**
 * The DynamoDB stream event source mapping, locally: per consumer, one reader per shard
 * (children after their parent), Lambda-shaped DynamoDBStreamEvents, event filtering, partial
 * batch responses with checkpointing at the earliest failed record and bounded retries; the
 * stream itself is fetched once for all consumers (openSharedStream), which also recovers
 * from expired iterators.
 */
import { Readable } from "node:stream";
import { DescribeTableCommand, type DynamoDBClient } from "@aws-sdk/client-dynamodb";
import {
  DescribeStreamCommand,
  type DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type Shard,
  type ShardIteratorType,
} from "@aws-sdk/client-dynamodb-streams";
import type { DynamoDBRecord, DynamoDBStreamEvent, AttributeValue as LambdaAttributeValue } from "aws-lambda";
import type { StreamConsumerEntry } from "../../shared/wiring.ts";
import { interpretBatchResponse } from "./batch-response.ts";
import { matchesFilterPattern, validateFilterPattern } from "./event-filter.ts";
import { errorDetails, type RuntimeLogger, sleep } from "./invoke.ts";
import { invokeTwice, type TwinDelivery, twinSchedule } from "./twins.ts";

const MAX_ERROR_BACKOFF_MS = 5_000;
/** DynamoDB Local's ApproximateCreationDateTime is rounded down to the minute. */
const CREATION_TIME_SLACK_SECONDS = 60;
/** GetRecords returns at most 1,000 records. */
const MAX_GET_RECORDS = 1_000;

export interface StreamConsumerStats {
  /** Records read from the stream (every retry counts). */
  records: number;
  /** Records dropped by the filter pattern (processed without an invocation). */
  filteredOut: number;
  invocations: number;
  /** Second invocations of a batch with deliverEachBatchTwice. */
  twinInvocations: number;
  /** Of those, the ones run at the same time as their batch's first invocation. */
  concurrentTwins: number;
  /** Batches retried after a throw or a batch item failure. */
  retries: number;
  /** Records given up on after retryAttempts, or older than maxRecordAgeSeconds. */
  discarded: number;
  handlerErrors: number;
  shards: number;
}

export interface StreamPollerOptions {
  entry: StreamConsumerEntry;
  /** The table's stream, read once for every consumer (see openSharedStream). */
  stream: SharedStream;
  invoke(event: DynamoDBStreamEvent): Promise<unknown>;
  idlePollMs: number;
  /** How often new shards are looked for; DynamoDB (Local) rolls shards over time. */
  shardDiscoveryMs?: number;
  /** Base delay before a failed batch is retried; doubles per attempt, capped at 5 s. */
  retryDelayMs?: number;
  /** Invoke every batch twice with identical records (tests prove idempotency). */
  deliverEachBatchTwice?: boolean;
  /** How a batch's twin is delivered (default alternating). */
  twinDelivery?: TwinDelivery;
  logger: RuntimeLogger;
}

export interface StreamPoller {
  stats(): StreamConsumerStats;
  stop(): Promise<void>;
}

/** DynamoDB Local names its region "ddblocal" in ARNs and records; Lambda would show the real one. */
function localizeArn(arn: string, region: string): string {
  return arn.replace(/^(arn:aws:dynamodb:)ddblocal:/, `$1${region}:`);
}

/** A stream record as GetRecords sends it: its images are already Lambda's JSON AttributeValues. */
export type WireRecord = Omit<DynamoDBRecord, "eventSourceARN">;

/**
 * GetRecords's records as the wire's JSON, past the SDK's deserializer. The wire already has
 * Lambda's event format (base64 binaries, creation time in epoch seconds): decoding every
 * image into SDK shapes and converting it back only cost CPU (about 0.2 ms per item in the
 * benchmark). Errors (e.g. an expired iterator) still surface as SDK errors.
 */
export async function getRecordsAsJson(
  streams: DynamoDBStreamsClient,
  input: { ShardIterator: string; Limit: number },
  signal?: AbortSignal,
): Promise<{ Records?: WireRecord[]; NextShardIterator?: string }> {
  const command = new GetRecordsCommand(input);
  let page: { Records?: WireRecord[]; NextShardIterator?: string } | undefined;
  command.middlewareStack.add(
    (next) => async (args) => {
      const result = await next(args);
      const response = result.response as { statusCode?: number; body?: unknown };
      const status = response.statusCode ?? 0;
      if (status >= 200 && status < 300) {
        if (!(response.body instanceof Readable)) throw new Error("GetRecords: expected a Node stream body");
        const chunks: Buffer[] = [];
        for await (const chunk of response.body) chunks.push(chunk as Buffer);
        page = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        // The deserializer that follows reads an empty object instead.
        response.body = new TextEncoder().encode("{}");
      }
      return result;
    },
    { step: "deserialize", priority: "low", name: "getRecordsAsJson" },
  );
  await streams.send(command, { abortSignal: signal });
  if (!page) throw new Error("GetRecords: no response body was read");
  return page;
}

/** DynamoDB Local sends an empty map as `{}`; DynamoDB and Lambda send `{M: {}}`. Mends in place. */
function restoreEmptyMaps(image: Record<string, LambdaAttributeValue>): Record<string, LambdaAttributeValue> {
  for (const name in image) image[name] = restoreEmptyMap(image[name] as LambdaAttributeValue);
  return image;
}

function restoreEmptyMap(value: LambdaAttributeValue): LambdaAttributeValue {
  if (value.M !== undefined) restoreEmptyMaps(value.M);
  else if (value.L !== undefined) value.L = value.L.map(restoreEmptyMap);
  else if (Object.keys(value).length === 0) return { M: {} };
  return value;
}

export function toDynamoDBRecord(record: WireRecord, streamArn: string, region: string): DynamoDBRecord {
  const source = record.dynamodb ?? {};
  const created = source.ApproximateCreationDateTime;
  return {
    eventID: record.eventID,
    eventName: record.eventName,
    eventVersion: record.eventVersion ?? "1.1",
    eventSource: "aws:dynamodb",
    awsRegion: region,
    dynamodb: {
      ...(created !== undefined ? { ApproximateCreationDateTime: Math.floor(created) } : {}),
      ...(source.Keys ? { Keys: source.Keys } : {}),
      ...(source.NewImage ? { NewImage: restoreEmptyMaps(source.NewImage) } : {}),
      ...(source.OldImage ? { OldImage: restoreEmptyMaps(source.OldImage) } : {}),
      SequenceNumber: source.SequenceNumber,
      SizeBytes: source.SizeBytes,
      StreamViewType: source.StreamViewType,
    },
    ...(record.userIdentity ? { userIdentity: { ...record.userIdentity } } : {}),
    eventSourceARN: localizeArn(streamArn, region),
  };
}

function errorName(error: unknown): string {
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

/** A shard reader's place: Lambda's checkpoint and the retries of the batch that failed. */
interface ShardCursor {
  /** The first record not yet handled (delivered, filtered out or given up on). */
  position: number;
  failedSequence?: string;
  attempts: number;
}

export async function startStreamPoller(options: StreamPollerOptions): Promise<StreamPoller> {
  const { entry, stream, logger } = options;
  validateFilterPattern(entry.filterPattern);

  const counters: StreamConsumerStats = {
    records: 0,
    filteredOut: 0,
    invocations: 0,
    twinInvocations: 0,
    concurrentTwins: 0,
    retries: 0,
    discarded: 0,
    handlerErrors: 0,
    shards: 0,
  };
  const abort = new AbortController();
  const { signal } = abort;
  const retryDelayMs = options.retryDelayMs ?? 200;
  const twinConcurrently = twinSchedule(options.twinDelivery);
  /** Shard id → its reader; a child waits for its parent's reader to finish. */
  const readers = new Map<string, Promise<void>>();

  type Delivery =
    | { kind: "done" }
    /** Resume at this record: the earliest failure of the batch. */
    | { kind: "retryFrom"; sequenceNumber: string };

  /** Filters, invokes and reads the batch response of one batch. */
  async function deliver(records: DynamoDBRecord[]): Promise<Delivery> {
    const maxAgeSeconds = entry.maxRecordAgeSeconds;
    const nowSeconds = Date.now() / 1000;
    const fresh = records.filter((record) => {
      const created = record.dynamodb?.ApproximateCreationDateTime;
      // Lambda drops records older than maxRecordAge (-1 = forever). DynamoDB Local truncates
      // creation times to the minute, hence the minute of slack.
      const tooOld =
        maxAgeSeconds >= 0 &&
        created !== undefined &&
        nowSeconds - created > maxAgeSeconds + CREATION_TIME_SLACK_SECONDS;
      if (tooOld) {
        counters.discarded++;
        logger.error(`${entry.id}: dropping a record older than ${maxAgeSeconds} s`, { eventID: record.eventID });
      }
      return !tooOld;
    });
    // A copy, as each Lambda gets its own event: the buffered records are every consumer's.
    const matching = structuredClone(fresh.filter((record) => matchesFilterPattern(entry.filterPattern, record)));
    counters.filteredOut += fresh.length - matching.length;
    if (matching.length === 0) return { kind: "done" };

    const sequenceNumbers = matching.map((record) => record.dynamodb?.SequenceNumber ?? "");
    counters.invocations++;
    try {
      let response: unknown;
      if (!options.deliverEachBatchTwice) {
        response = await options.invoke({ Records: matching });
      } else {
        const concurrently = twinConcurrently();
        counters.twinInvocations++;
        if (concurrently) counters.concurrentTwins++;
        // Each twin gets its own copy of the records; the second one's response counts.
        response = await invokeTwice(() => options.invoke({ Records: structuredClone(matching) }), concurrently);
      }
      const outcome = interpretBatchResponse(response, sequenceNumbers);
      if (outcome.kind === "success") return { kind: "done" };
      if (outcome.kind === "partial") {
        // Lambda checkpoints before the earliest failure and resumes there.
        const earliest = sequenceNumbers.find((sequenceNumber) => outcome.failed.has(sequenceNumber));
        return { kind: "retryFrom", sequenceNumber: earliest ?? (sequenceNumbers[0] as string) };
      }
      counters.handlerErrors++;
      logger.error(`${entry.id}: invalid batch response, the whole batch is retried`, { reason: outcome.reason });
    } catch (error) {
      counters.handlerErrors++;
      logger.error(`${entry.id} failed; its batch will be retried`, {
        records: matching.length,
        ...errorDetails(error),
      });
    }
    return { kind: "retryFrom", sequenceNumber: sequenceNumbers[0] as string };
  }

  async function readPage(shardId: string, from: number, limit: number): Promise<StreamPage> {
    const page = await stream.read(shardId, from, limit);
    counters.records += page.records.length;
    return page;
  }

  /**
   * One batch: a page, then, with a batching window, more pages until the batch holds
   * `batchSize` matching records, the window (counted from the first record) closes, or the
   * shard ends, as Lambda gathers a batch.
   */
  async function readBatch(shardId: string, from: number): Promise<StreamPage> {
    const batch = await readPage(shardId, from, entry.batchSize);
    const windowMs = (entry.maxBatchingWindowSeconds ?? 0) * 1000;
    if (windowMs === 0 || batch.records.length === 0) return batch;
    const closesAt = Date.now() + windowMs;
    let matching = batch.records.filter((record) => matchesFilterPattern(entry.filterPattern, record)).length;
    while (matching < entry.batchSize && !batch.ended && !signal.aborted) {
      const left = closesAt - Date.now();
      if (left <= 0) break;
      // Never more than batchSize matching records: ask for no more than are still missing.
      const page = await readPage(shardId, from + batch.records.length, entry.batchSize - matching);
      batch.records.push(...page.records);
      batch.ended = page.ended;
      matching += page.records.filter((record) => matchesFilterPattern(entry.filterPattern, record)).length;
      if (page.records.length === 0) await sleep(Math.min(options.idlePollMs, left), signal);
    }
    return batch;
  }

  /**
   * Delivers a batch and moves the shard's checkpoint: past the batch, or, when the consumer
   * failed part of it, to the failed record, to read it again after a backoff, until the
   * retries run out and the rest of the batch is skipped. Answers whether it will be retried.
   */
  async function deliverBatch(shardId: string, records: DynamoDBRecord[], cursor: ShardCursor): Promise<boolean> {
    const delivery = await deliver(records);
    if (delivery.kind === "retryFrom") {
      const failedIndex = Math.max(
        0,
        records.findIndex((record) => record.dynamodb?.SequenceNumber === delivery.sequenceNumber),
      );
      cursor.attempts = delivery.sequenceNumber === cursor.failedSequence ? cursor.attempts + 1 : 1;
      cursor.failedSequence = delivery.sequenceNumber;
      if (cursor.attempts <= entry.retryAttempts) {
        counters.retries++;
        // Everything before the failure is done; the batch is read again from the failure.
        cursor.position += failedIndex;
        stream.handled(shardId, entry.id, cursor.position);
        await sleep(Math.min(retryDelayMs * 2 ** (cursor.attempts - 1), MAX_ERROR_BACKOFF_MS), signal);
        return true;
      }
      counters.discarded += records.length - failedIndex;
      logger.error(`${entry.id}: giving up after ${entry.retryAttempts} retries; skipping records`, {
        shardId,
        from: delivery.sequenceNumber,
        to: records.at(-1)?.dynamodb?.SequenceNumber,
        count: records.length - failedIndex,
      });
    }
    cursor.attempts = 0;
    cursor.failedSequence = undefined;
    cursor.position += records.length;
    stream.handled(shardId, entry.id, cursor.position);
    return false;
  }

  async function readShard(shard: Shard): Promise<void> {
    const shardId = shard.ShardId as string;
    const parent = shard.ParentShardId ? readers.get(shard.ParentShardId) : undefined;
    if (parent) await parent; // stream order: a child's records follow its parent's
    counters.shards++;

    const cursor: ShardCursor = { position: 0, attempts: 0 };
    let consecutiveErrors = 0;
    while (!signal.aborted) {
      try {
        const batch = await readBatch(shardId, cursor.position);
        consecutiveErrors = 0;
        if (batch.records.length > 0 && (await deliverBatch(shardId, batch.records, cursor))) continue;
        if (batch.ended) return; // closed shard, fully read
        if (batch.records.length === 0) await sleep(options.idlePollMs, signal);
      } catch (error) {
        if (readerStops(error, shardId)) return;
        consecutiveErrors++;
        await sleep(Math.min(options.idlePollMs * 2 ** consecutiveErrors, MAX_ERROR_BACKOFF_MS), signal);
      }
    }
  }

  /** After a failed read: whether the reader stops (shutting down, or the stream is gone), else it is logged. */
  function readerStops(error: unknown, shardId: string): boolean {
    if (signal.aborted) return true;
    if (errorName(error) === "ResourceNotFoundException") {
      logger.info(`${entry.id}: stream or shard ${shardId} is gone; stopping its reader`);
      return true;
    }
    logger.error(`${entry.id}: reading shard ${shardId} failed`, errorDetails(error));
    return false;
  }

  function startReaders(shards: Shard[]): void {
    const listed = new Map(shards.map((shard) => [shard.ShardId ?? "", shard]));
    const start = (shard: Shard) => {
      const shardId = shard.ShardId;
      if (!shardId || readers.has(shardId)) return;
      // Parents first, so a child finds its parent's reader and waits for it.
      const parent = shard.ParentShardId ? listed.get(shard.ParentShardId) : undefined;
      if (parent) start(parent);
      const reader = readShard(shard).catch((error: unknown) =>
        logger.error(`${entry.id}: reader of shard ${shardId} stopped`, errorDetails(error)),
      );
      readers.set(shardId, reader);
    };
    for (const shard of shards) start(shard);
  }

  async function discoverShards(): Promise<void> {
    while (!signal.aborted) {
      await sleep(options.shardDiscoveryMs ?? 2_000, signal);
      if (signal.aborted) break;
      try {
        startReaders(await stream.listShards());
      } catch (error) {
        if (signal.aborted) break;
        if (errorName(error) === "ResourceNotFoundException") {
          logger.info(`${entry.id}: stream ${stream.streamArn} is gone; stopping`);
          break;
        }
        logger.error(`${entry.id}: DescribeStream failed`, errorDetails(error));
      }
    }
  }

  // The first listing happens before returning so records written right after start-up are read.
  startReaders(await stream.listShards());
  const discovery = discoverShards();

  return {
    stats: () => ({ ...counters }),
    async stop() {
      abort.abort();
      await discovery;
      await Promise.allSettled([...readers.values()]);
    },
  };
}
