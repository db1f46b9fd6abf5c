/**
 * Replays the batches a stream consumer gave up on. Lambda sends the on-failure
 * destination (the stream-failures queue) a record of where the batch was — shard and
 * sequence-number range — not the records themselves; they are read back from the stream
 * while it still keeps them (24 h), filtered as the consumer's mapping filters them, and
 * handed to the consumer's function. A message is deleted only once that succeeded; every
 * stream handler is idempotent, so replaying records already handled is harmless.
 */
import { type DynamoDBStreamsClient, GetShardIteratorCommand } from "@aws-sdk/client-dynamodb-streams";
import { DeleteMessageCommand, type Message, ReceiveMessageCommand, type SQSClient } from "@aws-sdk/client-sqs";
import type { DynamoDBRecord } from "aws-lambda";
import { type StreamConsumerEntry, wiring } from "../../shared/wiring.ts";
import { matchesFilterPattern } from "../local/event-filter.ts";
import { getRecordsAsJson, toDynamoDBRecord } from "../local/stream-wire.ts";

/** The invocation record Lambda sends a DynamoDB stream mapping's on-failure destination. */
export interface StreamFailure {
  requestContext?: { requestId?: string; functionArn?: string; condition?: string; approximateInvokeCount?: number };
  responseContext?: { statusCode?: number; executedVersion?: string; functionError?: string };
  version?: string;
  timestamp?: string;
  DDBStreamBatchInfo: {
    shardId: string;
    startSequenceNumber: string;
    endSequenceNumber: string;
    streamArn: string;
    approximateArrivalOfFirstRecord?: string;
    approximateArrivalOfLastRecord?: string;
    batchSize?: number;
  };
}

/** Invokes a function synchronously and resolves with its response; rejects on a function error. */
export type InvokeFunction = (functionName: string, event: { Records: DynamoDBRecord[] }) => Promise<unknown>;

export interface ReplayOptions {
  sqs: SQSClient;
  streams: DynamoDBStreamsClient;
  /** The stream-failures queue. */
  queueUrl: string;
  region: string;
  invoke: InvokeFunction;
  /** The stream consumer (wiring id) whose filter applies; default: the one the message's function belongs to. */
  consumerId?: string;
  /** The function to invoke; default: the message's. */
  functionName?: string;
  /** Stop after this many messages (default: until the queue is empty). */
  maxMessages?: number;
  /** How long a message stays hidden from other readers while it is replayed (default 300 s). */
  visibilityTimeoutSeconds?: number;
}

export type ReplayOutcome =
  | { messageId: string; status: "replayed"; consumer: string; functionName: string; records: number }
  | { messageId: string; status: "failed" | "expired"; consumer?: string; functionName?: string; detail: string }
  | { messageId: string; status: "unreadable"; detail: string };

const isSequenceNumber = (value: unknown): value is string => typeof value === "string" && /^\d+$/.test(value);

export function parseStreamFailure(body: string | undefined): StreamFailure | undefined {
  try {
    const parsed = JSON.parse(body ?? "") as Partial<StreamFailure>;
    const info = parsed.DDBStreamBatchInfo;
    if (!info || typeof info.shardId !== "string" || typeof info.streamArn !== "string") return undefined;
    if (!isSequenceNumber(info.startSequenceNumber) || !isSequenceNumber(info.endSequenceNumber)) return undefined;
    return parsed as StreamFailure;
  } catch {
    return undefined;
  }
}

/**
 * The wiring's stream consumer a deployed function belongs to: CloudFormation names it
 * `<stack>-<id without dashes>Function<hash>-<suffix>`.
 */
export function consumerOfFunction(functionArnOrName: string): StreamConsumerEntry | undefined {
  const name = (functionArnOrName.split(":function:")[1] ?? functionArnOrName).split(":")[0] ?? "";
  const compact = name.toLowerCase().replaceAll(/[^a-z0-9]/g, "");
  const matches = wiring.streamConsumers.filter((consumer) =>
    compact.includes(`${consumer.id.replaceAll("-", "")}function`),
  );
  return matches.length === 1 ? matches[0] : undefined;
}

/** GetRecords pages read at most per batch: a batch spans a few pages, never this many. */
const MAX_PAGES = 100;

class RecordsExpiredError extends Error {}

/** The records of the failed batch's range, in stream order, as Lambda would have delivered them. */
export async function readFailedBatch(
  streams: DynamoDBStreamsClient,
  info: StreamFailure["DDBStreamBatchInfo"],
  region: string,
): Promise<DynamoDBRecord[]> {
  const last = BigInt(info.endSequenceNumber);
  const records: DynamoDBRecord[] = [];
  try {
    let { ShardIterator: iterator } = await streams.send(
      new GetShardIteratorCommand({
        StreamArn: info.streamArn,
        ShardId: info.shardId,
        ShardIteratorType: "AT_SEQUENCE_NUMBER",
        SequenceNumber: info.startSequenceNumber,
      }),
    );
    for (let page = 0; iterator && page < MAX_PAGES; page++) {
      const { Records, NextShardIterator } = await getRecordsAsJson(streams, { ShardIterator: iterator, Limit: 1000 });
      for (const record of Records ?? []) {
        const sequenceNumber = BigInt(record.dynamodb?.SequenceNumber ?? "0");
        if (sequenceNumber > last) return records;
        records.push(toDynamoDBRecord(record, info.streamArn, region));
        if (sequenceNumber === last) return records;
      }
      iterator = NextShardIterator;
    }
  } catch (error) {
    const name = error instanceof Error ? error.name : "";
    if (name === "TrimmedDataAccessException" || name === "ResourceNotFoundException") {
      throw new RecordsExpiredError(`The stream no longer holds these records (${name}): past its 24 h retention`);
    }
    throw error;
  }
  throw new Error(`Record ${info.endSequenceNumber} was not found in shard ${info.shardId}`);
}

const chunks = <T>(items: T[], size: number) =>
  Array.from({ length: Math.ceil(items.length / size) }, (_, index) => items.slice(index * size, (index + 1) * size));

/** A partial batch response naming failed records is a failure too: they were not handled. */
function failedRecordsOf(response: unknown): string[] {
  const failures = (response as { batchItemFailures?: { itemIdentifier?: string }[] } | null)?.batchItemFailures;
  return Array.isArray(failures) ? failures.map((failure) => String(failure.itemIdentifier)) : [];
}

async function replayOne(message: Message, options: ReplayOptions): Promise<ReplayOutcome> {
  const messageId = message.MessageId ?? "";
  const failure = parseStreamFailure(message.Body);
  if (!failure) return { messageId, status: "unreadable", detail: "Not a DynamoDB stream invocation record" };
  const functionName = options.functionName ?? failure.requestContext?.functionArn;
  const consumer = options.consumerId
    ? wiring.streamConsumers.find((entry) => entry.id === options.consumerId)
    : consumerOfFunction(failure.requestContext?.functionArn ?? "");
  if (!consumer || !functionName) {
    const detail = `No stream consumer or function for ${failure.requestContext?.functionArn}: give --consumer and --function`;
    return { messageId, status: "failed", functionName, detail };
  }
  const named = { consumer: consumer.id, functionName };
  try {
    const records = await readFailedBatch(options.streams, failure.DDBStreamBatchInfo, options.region);
    const matching = records.filter((record) => matchesFilterPattern(consumer.filterPattern, record));
    for (const batch of chunks(matching, consumer.batchSize)) {
      const failed = failedRecordsOf(await options.invoke(functionName, { Records: batch }));
      if (failed.length > 0) throw new Error(`The function reported failed records from ${failed[0]}`);
    }
    await options.sqs.send(
      new DeleteMessageCommand({ QueueUrl: options.queueUrl, ReceiptHandle: message.ReceiptHandle }),
    );
    return { messageId, status: "replayed", ...named, records: matching.length };
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    return { messageId, status: error instanceof RecordsExpiredError ? "expired" : "failed", ...named, detail };
  }
}

/** Replays every message of the queue (or `maxMessages`); messages not replayed stay, for a later run. */
export async function replayStreamFailures(options: ReplayOptions): Promise<ReplayOutcome[]> {
  const outcomes: ReplayOutcome[] = [];
  const seen = new Set<string>();
  const limit = options.maxMessages ?? Number.POSITIVE_INFINITY;
  while (outcomes.length < limit) {
    const { Messages } = await options.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: options.queueUrl,
        MaxNumberOfMessages: Math.min(10, limit - outcomes.length),
        WaitTimeSeconds: 1,
        VisibilityTimeout: options.visibilityTimeoutSeconds ?? 300,
      }),
    );
    // A kept message seen again (its visibility ran out during a long run) ends the run.
    const fresh = (Messages ?? []).filter((message) => !seen.has(message.MessageId ?? ""));
    if (fresh.length === 0) break;
    for (const message of fresh) {
      seen.add(message.MessageId ?? "");
      outcomes.push(await replayOne(message, options));
    }
  }
  return outcomes;
}
