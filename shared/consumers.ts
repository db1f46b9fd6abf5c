/**
 * The two shapes every event consumer takes, so a queue or stream handler is one line of
 * wiring to its domain code:
 * - `sqsBatch(schema, handle)`: each message body parsed with `schema`; `handle` gets the
 *   batch and answers which messages SQS must deliver again (partial batch response).
 * - `streamBatch(handle)`: a DynamoDB stream batch; `handle` answers the failed records.
 * Both put the Lambda context (request id, function, cold start) on every log line.
 */
import type {
  Context,
  DynamoDBBatchResponse,
  DynamoDBRecord,
  DynamoDBStreamEvent,
  SQSBatchResponse,
  SQSEvent,
  SQSRecord,
} from "aws-lambda";
import type { z } from "zod";
import { mapLimit } from "./concurrency.ts";
import { type LogContext, logger, withLambdaContext, withLogContext } from "./logger.ts";
import { annotate } from "./tracer.ts";

export interface QueueMessage<T> {
  record: SQSRecord;
  body: T;
  /** Deliveries of this message so far, this one included. */
  receiveCount: number;
}

export interface SqsBatchOptions {
  /**
   * What becomes of a message whose body does not parse: `redeliver` leaves it to the
   * queue's redrive policy (its dead-letter consumer counts it for the alarm); `drop`
   * (for that dead-letter consumer itself) logs it and lets it go.
   */
  malformed?: "redeliver" | "drop";
  /** Told how many messages of the batch did not parse (for a metric). */
  onMalformed?: (count: number) => void;
}

/** Messages to deliver again, by message id. */
export type Redeliver = Iterable<string>;

function parseBody<T>(record: SQSRecord, schema: z.ZodType<T>): T | undefined {
  try {
    const parsed = schema.safeParse(JSON.parse(record.body));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** Splits a batch into parsed messages and the records that did not parse. */
function parseMessages<T>(records: SQSRecord[], schema: z.ZodType<T>) {
  const messages: QueueMessage<T>[] = [];
  const malformed: SQSRecord[] = [];
  for (const record of records) {
    const body = parseBody(record, schema);
    if (body === undefined) malformed.push(record);
    else messages.push({ record, body, receiveCount: Number(record.attributes?.ApproximateReceiveCount ?? "1") });
  }
  return { messages, malformed };
}

/** The organization and job a message is about, where its body names them. */
function logContextOf(body: unknown): LogContext {
  const { orgId, jobId } = (body ?? {}) as Record<string, unknown>;
  return {
    ...(typeof orgId === "string" ? { orgId } : {}),
    ...(typeof jobId === "string" ? { jobId } : {}),
  };
}

/** The correlation ids every message of the batch shares: on the batch's own lines too. */
function sharedLogContext(messages: QueueMessage<unknown>[]): LogContext {
  const [first, ...rest] = messages.map((message) => logContextOf(message.body));
  return Object.fromEntries(
    Object.entries(first ?? {}).filter(([key, value]) =>
      rest.every((other) => other[key as keyof LogContext] === value),
    ),
  );
}

export function sqsBatch<T>(
  schema: z.ZodType<T>,
  handle: (messages: QueueMessage<T>[], context: Context) => Promise<Redeliver>,
  options: SqsBatchOptions = {},
) {
  return withLambdaContext<SQSEvent, SQSBatchResponse>(async (event, context) => {
    const { messages, malformed } = parseMessages(event.Records, schema);
    for (const record of malformed) {
      logger.error("Malformed queue message", {
        messageId: record.messageId,
        bodyBytes: Buffer.byteLength(record.body),
        outcome: options.malformed === "drop" ? "dropped" : "left for the dead-letter queue",
      });
    }
    if (malformed.length > 0) options.onMalformed?.(malformed.length);
    const shared = sharedLogContext(messages);
    annotate(shared);
    const handled = messages.length > 0 ? await withLogContext(shared, () => handle(messages, context)) : [];
    const redeliver = new Set(handled);
    if (options.malformed !== "drop") for (const record of malformed) redeliver.add(record.messageId);
    return { batchItemFailures: [...redeliver].map((itemIdentifier) => ({ itemIdentifier })) };
  });
}

/**
 * A batch handler that handles each message on its own, `concurrency` at a time: a message
 * whose handling throws (or answers "retry") is delivered again, the others are done.
 */
export function eachMessage<T>(
  handle: (message: QueueMessage<T>) => Promise<unknown>,
  { concurrency = 1, failure }: { concurrency?: number; failure: string },
) {
  return async (messages: QueueMessage<T>[]): Promise<Redeliver> => {
    const outcomes = await mapLimit(messages, concurrency, (message) =>
      withLogContext(logContextOf(message.body), async () => {
        try {
          return (await handle(message)) === "retry" ? "retry" : "done";
        } catch (error) {
          logger.warn(failure, { messageId: message.record.messageId, error: error as Error });
          return "retry";
        }
      }),
    );
    return messages.filter((_, index) => outcomes[index] === "retry").map((message) => message.record.messageId);
  };
}

export function streamBatch(handle: (records: DynamoDBRecord[]) => Promise<DynamoDBBatchResponse>) {
  return withLambdaContext<DynamoDBStreamEvent, DynamoDBBatchResponse>((event) => handle(event.Records));
}
