/**
 * The DynamoDB stream event source mapping, locally: per consumer, one reader per shard
 * (children after their parent), Lambda-shaped DynamoDBStreamEvents, event filtering, partial
 * batch responses with checkpointing at the earliest failed record and bounded retries. The
 * stream itself is fetched once for all consumers (shared-stream.ts).
 */
import type { Shard } from "@aws-sdk/client-dynamodb-streams";
import type { DynamoDBRecord, DynamoDBStreamEvent } from "aws-lambda";
import type { StreamConsumerEntry } from "../../shared/wiring.ts";
import { interpretBatchResponse } from "./batch-response.ts";
import { matchesFilterPattern, validateFilterPattern } from "./event-filter.ts";
import { errorDetails, type RuntimeLogger, sleep } from "./invoke.ts";
import { errorName, type SharedStream, type StreamPage } from "./shared-stream.ts";
import { invokeTwice, type TwinDelivery, twinSchedule } from "./twins.ts";

const MAX_ERROR_BACKOFF_MS = 5_000;
/** DynamoDB Local's ApproximateCreationDateTime is rounded down to the minute. */
const CREATION_TIME_SLACK_SECONDS = 60;

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
