/**
 * The DynamoDB stream event source mapping, locally: one reader per shard (children after
 * their parent), Lambda-shaped DynamoDBStreamEvents, event filtering, partial batch
 * responses with checkpointing at the earliest failed record, bounded retries, and
 * recovery from expired iterators.
 */
import { DescribeTableCommand, type DynamoDBClient } from "@aws-sdk/client-dynamodb";
import {
  type AttributeValue,
  DescribeStreamCommand,
  type DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type Shard,
  type ShardIteratorType,
  type _Record as StreamRecord,
} from "@aws-sdk/client-dynamodb-streams";
import type { DynamoDBRecord, DynamoDBStreamEvent, AttributeValue as LambdaAttributeValue } from "aws-lambda";
import type { StreamConsumerEntry } from "../../shared/wiring.ts";
import { interpretBatchResponse } from "./batch-response.ts";
import { matchesFilterPattern, validateFilterPattern } from "./event-filter.ts";
import { errorDetails, type RuntimeLogger, sleep } from "./invoke.ts";

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
  /** Batches retried after a throw or a batch item failure. */
  retries: number;
  /** Records given up on after retryAttempts, or older than maxRecordAgeSeconds. */
  discarded: number;
  handlerErrors: number;
  shards: number;
}

export interface StreamPollerOptions {
  entry: StreamConsumerEntry;
  tableName: string;
  dynamodb: DynamoDBClient;
  streams: DynamoDBStreamsClient;
  region: string;
  invoke(event: DynamoDBStreamEvent): Promise<unknown>;
  idlePollMs: number;
  /** How often new shards are looked for; DynamoDB (Local) rolls shards over time. */
  shardDiscoveryMs?: number;
  /** Base delay before a failed batch is retried; doubles per attempt, capped at 5 s. */
  retryDelayMs?: number;
  /** Invoke every batch twice with identical records (tests prove idempotency). */
  deliverEachBatchTwice?: boolean;
  logger: RuntimeLogger;
}

export interface StreamPoller {
  stats(): StreamConsumerStats;
  stop(): Promise<void>;
}

/** The SDK decodes binary to Uint8Array; Lambda's JSON event carries base64 strings. */
function toLambdaAttributeValue(value: AttributeValue): LambdaAttributeValue {
  if (value.B !== undefined) return { B: Buffer.from(value.B).toString("base64") };
  if (value.BS !== undefined) return { BS: value.BS.map((item) => Buffer.from(item).toString("base64")) };
  if (value.M !== undefined) return { M: toLambdaImage(value.M) };
  if (value.L !== undefined) return { L: value.L.map(toLambdaAttributeValue) };
  // The streams client decodes an empty map ({M: {}}) to {}; Lambda delivers {M: {}}.
  if (Object.keys(value).length === 0) return { M: {} };
  return value as LambdaAttributeValue;
}

function toLambdaImage(image: Record<string, AttributeValue>): Record<string, LambdaAttributeValue> {
  return Object.fromEntries(Object.entries(image).map(([name, value]) => [name, toLambdaAttributeValue(value)]));
}

/** DynamoDB Local names its region "ddblocal" in ARNs and records; Lambda would show the real one. */
export function localizeArn(arn: string, region: string): string {
  return arn.replace(/^(arn:aws:dynamodb:)ddblocal:/, `$1${region}:`);
}

export function toDynamoDBRecord(record: StreamRecord, streamArn: string, region: string): DynamoDBRecord {
  const source = record.dynamodb ?? {};
  const created = source.ApproximateCreationDateTime;
  return {
    eventID: record.eventID,
    eventName: record.eventName,
    eventVersion: record.eventVersion ?? "1.1",
    eventSource: "aws:dynamodb",
    awsRegion: region,
    dynamodb: {
      ...(created !== undefined ? { ApproximateCreationDateTime: Math.floor(new Date(created).getTime() / 1000) } : {}),
      ...(source.Keys ? { Keys: toLambdaImage(source.Keys) } : {}),
      ...(source.NewImage ? { NewImage: toLambdaImage(source.NewImage) } : {}),
      ...(source.OldImage ? { OldImage: toLambdaImage(source.OldImage) } : {}),
      SequenceNumber: source.SequenceNumber,
      SizeBytes: source.SizeBytes,
      StreamViewType: source.StreamViewType,
    },
    ...(record.userIdentity ? { userIdentity: { ...record.userIdentity } } : {}),
    eventSourceARN: localizeArn(streamArn, region),
  };
}

/** Sequence numbers are decimal strings of varying length: compare them as numbers. */
export function compareSequenceNumbers(a: string, b: string): number {
  try {
    const difference = BigInt(a) - BigInt(b);
    return difference === 0n ? 0 : difference > 0n ? 1 : -1;
  } catch {
    return a.localeCompare(b);
  }
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : "";
}

async function getStreamArn(dynamodb: DynamoDBClient, tableName: string): Promise<string> {
  const { Table } = await dynamodb.send(new DescribeTableCommand({ TableName: tableName }));
  if (!Table?.LatestStreamArn) throw new Error(`Table ${tableName} has no stream`);
  return Table.LatestStreamArn;
}

export async function startStreamPoller(options: StreamPollerOptions): Promise<StreamPoller> {
  const { entry, streams, logger } = options;
  validateFilterPattern(entry.filterPattern);
  const streamArn = await getStreamArn(options.dynamodb, options.tableName);

  const counters: StreamConsumerStats = {
    records: 0,
    filteredOut: 0,
    invocations: 0,
    retries: 0,
    discarded: 0,
    handlerErrors: 0,
    shards: 0,
  };
  const abort = new AbortController();
  const { signal } = abort;
  const retryDelayMs = options.retryDelayMs ?? 200;
  /** Shard id → its reader; a child waits for its parent's reader to finish. */
  const readers = new Map<string, Promise<void>>();

  async function getIterator(shardId: string, type: ShardIteratorType, sequenceNumber?: string): Promise<string> {
    const { ShardIterator } = await streams.send(
      new GetShardIteratorCommand({
        StreamArn: streamArn,
        ShardId: shardId,
        ShardIteratorType: type,
        SequenceNumber: sequenceNumber,
      }),
      { abortSignal: signal },
    );
    if (!ShardIterator) throw new Error(`No iterator for shard ${shardId}`);
    return ShardIterator;
  }

  type Delivery =
    | { kind: "done" }
    /** Resume at this record: the earliest failure of the batch. */
    | { kind: "retryFrom"; sequenceNumber: string };

  /** Filters, invokes and reads the batch response of one GetRecords page. */
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
    const matching = fresh.filter((record) => matchesFilterPattern(entry.filterPattern, record));
    counters.filteredOut += fresh.length - matching.length;
    if (matching.length === 0) return { kind: "done" };

    const sequenceNumbers = matching.map((record) => record.dynamodb?.SequenceNumber ?? "");
    counters.invocations++;
    try {
      if (options.deliverEachBatchTwice) await options.invoke({ Records: matching });
      const outcome = interpretBatchResponse(await options.invoke({ Records: matching }), sequenceNumbers);
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

  async function readPage(iterator: string, limit: number) {
    const page = await streams.send(
      new GetRecordsCommand({ ShardIterator: iterator, Limit: Math.min(limit, MAX_GET_RECORDS) }),
      { abortSignal: signal },
    );
    const records = (page.Records ?? []).map((record) => toDynamoDBRecord(record, streamArn, options.region));
    counters.records += records.length;
    return { records, NextShardIterator: page.NextShardIterator };
  }

  /**
   * One batch: a page, then, with a batching window, more pages until the batch holds
   * `batchSize` matching records, the window (counted from the first record) closes, or the
   * shard ends, as Lambda gathers a batch.
   */
  async function readBatch(iterator: string) {
    const batch = await readPage(iterator, entry.batchSize);
    const windowMs = (entry.maxBatchingWindowSeconds ?? 0) * 1000;
    if (windowMs === 0 || batch.records.length === 0) return batch;
    const closesAt = Date.now() + windowMs;
    let matching = batch.records.filter((record) => matchesFilterPattern(entry.filterPattern, record)).length;
    while (matching < entry.batchSize && batch.NextShardIterator && !signal.aborted) {
      const left = closesAt - Date.now();
      if (left <= 0) break;
      // Never more than batchSize matching records: ask for no more than are still missing.
      const page = await readPage(batch.NextShardIterator, entry.batchSize - matching);
      batch.records.push(...page.records);
      batch.NextShardIterator = page.NextShardIterator;
      matching += page.records.filter((record) => matchesFilterPattern(entry.filterPattern, record)).length;
      if (page.records.length === 0) await sleep(Math.min(options.idlePollMs, left), signal);
    }
    return batch;
  }

  async function readShard(shard: Shard): Promise<void> {
    const shardId = shard.ShardId as string;
    const parent = shard.ParentShardId ? readers.get(shard.ParentShardId) : undefined;
    if (parent) await parent; // stream order: a child's records follow its parent's
    counters.shards++;

    let iterator: string | undefined;
    /** The last record handled (delivered, filtered out or given up on): where to resume after an expired iterator. */
    let checkpoint: string | undefined;
    let failedSequence: string | undefined;
    let attempts = 0;
    let consecutiveErrors = 0;

    const resume = async () =>
      checkpoint ? getIterator(shardId, "AFTER_SEQUENCE_NUMBER", checkpoint) : getIterator(shardId, "TRIM_HORIZON");

    while (!signal.aborted) {
      try {
        iterator ??= await resume();
        const page = await readBatch(iterator);
        consecutiveErrors = 0;
        const { records } = page;
        if (records.length > 0) {
          const delivery = await deliver(records);
          if (delivery.kind === "retryFrom") {
            attempts = delivery.sequenceNumber === failedSequence ? attempts + 1 : 1;
            failedSequence = delivery.sequenceNumber;
            if (attempts <= entry.retryAttempts) {
              counters.retries++;
              // Everything before the failure is done: an expired iterator must not replay it.
              const failedIndex = records.findIndex(
                (record) => record.dynamodb?.SequenceNumber === delivery.sequenceNumber,
              );
              if (failedIndex > 0) checkpoint = records[failedIndex - 1]?.dynamodb?.SequenceNumber ?? checkpoint;
              await sleep(Math.min(retryDelayMs * 2 ** (attempts - 1), MAX_ERROR_BACKOFF_MS), signal);
              iterator = await getIterator(shardId, "AT_SEQUENCE_NUMBER", delivery.sequenceNumber);
              continue;
            }
            const skipped = records.filter(
              (record) => compareSequenceNumbers(record.dynamodb?.SequenceNumber ?? "", delivery.sequenceNumber) >= 0,
            );
            counters.discarded += skipped.length;
            logger.error(`${entry.id}: giving up after ${entry.retryAttempts} retries; skipping records`, {
              shardId,
              from: delivery.sequenceNumber,
              to: records.at(-1)?.dynamodb?.SequenceNumber,
              count: skipped.length,
            });
          }
          attempts = 0;
          failedSequence = undefined;
          checkpoint = records.at(-1)?.dynamodb?.SequenceNumber ?? checkpoint;
        }
        if (!page.NextShardIterator) return; // closed shard, fully read
        iterator = page.NextShardIterator;
        if (records.length === 0) await sleep(options.idlePollMs, signal);
      } catch (error) {
        if (signal.aborted) return;
        const name = errorName(error);
        if (name === "ExpiredIteratorException") {
          iterator = undefined; // re-acquired after the checkpoint
          continue;
        }
        if (name === "TrimmedDataAccessException") {
          logger.error(`${entry.id}: records of shard ${shardId} were trimmed; resuming at the trim horizon`);
          checkpoint = undefined;
          iterator = undefined;
          continue;
        }
        if (name === "ResourceNotFoundException") {
          logger.info(`${entry.id}: stream or shard ${shardId} is gone; stopping its reader`);
          return;
        }
        consecutiveErrors++;
        logger.error(`${entry.id}: reading shard ${shardId} failed`, errorDetails(error));
        await sleep(Math.min(options.idlePollMs * 2 ** consecutiveErrors, MAX_ERROR_BACKOFF_MS), signal);
      }
    }
  }

  async function listShards(): Promise<Shard[]> {
    const shards: Shard[] = [];
    let exclusiveStartShardId: string | undefined;
    do {
      const { StreamDescription } = await streams.send(
        new DescribeStreamCommand({ StreamArn: streamArn, ExclusiveStartShardId: exclusiveStartShardId }),
        { abortSignal: signal },
      );
      shards.push(...(StreamDescription?.Shards ?? []));
      exclusiveStartShardId = StreamDescription?.LastEvaluatedShardId;
    } while (exclusiveStartShardId);
    return shards;
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
        startReaders(await listShards());
      } catch (error) {
        if (signal.aborted) break;
        if (errorName(error) === "ResourceNotFoundException") {
          logger.info(`${entry.id}: stream ${streamArn} is gone; stopping`);
          break;
        }
        logger.error(`${entry.id}: DescribeStream failed`, errorDetails(error));
      }
    }
  }

  // The first listing happens before returning so records written right after start-up are read.
  startReaders(await listShards());
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
