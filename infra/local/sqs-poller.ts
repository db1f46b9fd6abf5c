/**
 * The SQS event source mapping, locally: poll loops that receive batches, invoke the
 * consumer with a Lambda-shaped SQSEvent and delete only what succeeded. Failed messages
 * are left alone so their visibility timeout, ApproximateReceiveCount and the queue's
 * redrive policy (DLQ after maxReceiveCount) behave exactly as in AWS.
 */
import {
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  type Message,
  ReceiveMessageCommand,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import type { SQSEvent, SQSMessageAttribute, SQSRecord, SQSRecordAttributes } from "aws-lambda";
import type { QueueConsumerEntry } from "../../shared/wiring.ts";
import { interpretBatchResponse } from "./batch-response.ts";
import type { FairQueue } from "./fair-queues.ts";
import { errorDetails, type RuntimeLogger, sleep } from "./invoke.ts";
import { type TwinDelivery, twinSchedule } from "./twins.ts";

/** SQS returns at most 10 messages per receive. */
const MAX_RECEIVE = 10;
/**
 * Lambda long-polls the queue (20 s, the SQS maximum): an idle consumer costs one receive per
 * 20 s, not one per second. The emulator answers as soon as a message is sent or visible again.
 */
const LONG_POLL_SECONDS = 20;
const MAX_ERROR_BACKOFF_MS = 5_000;
/** How soon an idle fair-queue poller looks for delayed or returning messages, which no send announces. */
const FAIR_RECHECK_MS = 250;

export interface SqsConsumerStats {
  /** Messages received and handed to the consumer (every redelivery counts). */
  messages: number;
  /** Handler invocations (two per batch with deliverEachBatchTwice). */
  invocations: number;
  /** Second invocations of a batch with deliverEachBatchTwice. */
  twinInvocations: number;
  /** Of those, the ones run at the same time as their batch's first invocation. */
  concurrentTwins: number;
  /** Messages deleted after success. */
  succeeded: number;
  /** Messages left on the queue to be redelivered after their visibility timeout. */
  failed: number;
  /** Invocations that threw, timed out or answered with an invalid batch response. */
  handlerErrors: number;
}

export interface SqsPollerOptions {
  entry: QueueConsumerEntry;
  queueUrl: string;
  sqs: SQSClient;
  region: string;
  invoke(event: SQSEvent): Promise<unknown>;
  /** Concurrent poll loops (each runs one invocation at a time). */
  pollers: number;
  deliverEachBatchTwice: boolean;
  /** How a batch's twin is delivered (default alternating). */
  twinDelivery?: TwinDelivery;
  idlePollMs: number;
  logger: RuntimeLogger;
  /** The queue is a fair queue: its groups' queues are polled, the least busy group first (fair-queues.ts). */
  fair?: FairQueue;
}

export interface SqsPoller {
  stats(): SqsConsumerStats;
  stop(): Promise<void>;
}

function toMessageAttribute(attribute: {
  DataType?: string;
  StringValue?: string;
  BinaryValue?: Uint8Array;
}): SQSMessageAttribute {
  return {
    ...(attribute.StringValue !== undefined ? { stringValue: attribute.StringValue } : {}),
    ...(attribute.BinaryValue !== undefined
      ? { binaryValue: Buffer.from(attribute.BinaryValue).toString("base64") }
      : {}),
    stringListValues: [],
    binaryListValues: [],
    dataType: attribute.DataType ?? "String",
  };
}

/** The event Lambda's SQS poller builds: attributes as strings, message attributes camel-cased, binary as base64. */
function toSqsEvent(messages: Message[], queueArn: string, region: string): SQSEvent {
  const records = messages.map(
    (message): SQSRecord => ({
      messageId: message.MessageId ?? "",
      receiptHandle: message.ReceiptHandle ?? "",
      body: message.Body ?? "",
      attributes: { ...message.Attributes } as unknown as SQSRecordAttributes,
      messageAttributes: Object.fromEntries(
        Object.entries(message.MessageAttributes ?? {}).map(([name, value]) => [name, toMessageAttribute(value)]),
      ),
      ...(message.MD5OfMessageAttributes ? { md5OfMessageAttributes: message.MD5OfMessageAttributes } : {}),
      md5OfBody: message.MD5OfBody ?? "",
      eventSource: "aws:sqs",
      eventSourceARN: queueArn,
      awsRegion: region,
    }),
  );
  return { Records: records };
}

function isAbort(error: unknown): boolean {
  return error instanceof Error && (error.name === "AbortError" || error.name === "TimeoutError");
}

async function getQueueArn(sqs: SQSClient, queueUrl: string): Promise<string> {
  const { Attributes } = await sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["QueueArn"] }),
  );
  if (!Attributes?.QueueArn) throw new Error(`Queue ${queueUrl} has no QueueArn`);
  return Attributes.QueueArn;
}

export const emptySqsStats = (): SqsConsumerStats => ({
  messages: 0,
  invocations: 0,
  twinInvocations: 0,
  concurrentTwins: 0,
  succeeded: 0,
  failed: 0,
  handlerErrors: 0,
});

export async function startSqsPoller(options: SqsPollerOptions): Promise<SqsPoller> {
  const { entry, queueUrl, sqs, logger } = options;
  const queueArn = await getQueueArn(sqs, queueUrl);

  const counters = emptySqsStats();
  const twinConcurrently = twinSchedule(options.twinDelivery);
  const abort = new AbortController();
  const { signal } = abort;

  /** The queue each held message came from, by receipt handle: a fair queue's messages come from its groups' queues. */
  const sourceOf = new Map<string, string>();
  /** Messages this consumer's invocations hold, per queue. */
  const inFlight = new Map<string, number>();
  let turn = 0;

  async function receiveFrom(url: string, max: number, waitTimeSeconds: number): Promise<Message[]> {
    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: url,
        MaxNumberOfMessages: max,
        WaitTimeSeconds: waitTimeSeconds,
        MessageSystemAttributeNames: ["All"],
        MessageAttributeNames: ["All"],
      }),
      { abortSignal: signal },
    );
    for (const message of Messages) sourceOf.set(message.ReceiptHandle ?? "", url);
    inFlight.set(url, (inFlight.get(url) ?? 0) + Messages.length);
    return Messages;
  }

  /**
   * A fair queue's receive: from the group with the fewest messages in flight that has any
   * (in turn among equals), as SQS serves a quiet tenant before a busy one. No long poll
   * spans several queues: an empty round waits for the next send (or a short while, for
   * messages that become visible by themselves) and looks again.
   */
  async function receiveFair(fair: FairQueue, max: number, waitTimeSeconds: number): Promise<Message[]> {
    const deadline = Date.now() + waitTimeSeconds * 1000;
    for (;;) {
      const urls = fair.urls();
      const start = turn++ % urls.length;
      const inTurn = urls.map((_, i) => urls[(start + i) % urls.length] as string);
      const ordered = inTurn.sort((a, b) => (inFlight.get(a) ?? 0) - (inFlight.get(b) ?? 0));
      for (const url of ordered) {
        const messages = await receiveFrom(url, max, 0);
        if (messages.length > 0) return messages;
      }
      const remainingMs = deadline - Date.now();
      if (remainingMs <= 0 || signal.aborted) return [];
      await fair.activity(Math.min(remainingMs, Math.max(options.idlePollMs, FAIR_RECHECK_MS)), remainingMs, signal);
    }
  }

  const receive = (max: number, waitTimeSeconds: number): Promise<Message[]> =>
    options.fair ? receiveFair(options.fair, max, waitTimeSeconds) : receiveFrom(queueUrl, max, waitTimeSeconds);

  /** Messages leave the consumer's hands: deleted, or left for their visibility timeout. */
  function release(messages: Message[]) {
    for (const message of messages) {
      const url = sourceOf.get(message.ReceiptHandle ?? "") ?? queueUrl;
      sourceOf.delete(message.ReceiptHandle ?? "");
      inFlight.set(url, Math.max(0, (inFlight.get(url) ?? 0) - 1));
    }
  }

  /** One long poll, then (like Lambda's batching window) more receives until the batch is full or the window closes. */
  async function receiveBatch(): Promise<Message[]> {
    const batch = new Map<string, Message>();
    // A message seen twice while gathering (its visibility ran out) keeps only its newest receipt handle.
    const add = (messages: Message[]) => {
      for (const message of messages) batch.set(message.MessageId ?? "", message);
    };
    add(await receive(Math.min(entry.batchSize, MAX_RECEIVE), LONG_POLL_SECONDS));
    if (batch.size === 0) return [];
    const deadline = Date.now() + entry.maxBatchingWindowSeconds * 1000;
    while (batch.size < entry.batchSize && !signal.aborted) {
      const remainingMs = deadline - Date.now();
      if (remainingMs <= 0) break;
      let more: Message[];
      try {
        more = await receive(Math.min(entry.batchSize - batch.size, MAX_RECEIVE), remainingMs >= 1000 ? 1 : 0);
      } catch (error) {
        // Messages already held are invisible to everyone else: deliver them rather than drop them.
        if (!(signal.aborted && isAbort(error))) logger.error(`${entry.id}: receive failed`, errorDetails(error));
        break;
      }
      add(more);
      if (more.length === 0 && remainingMs < 1000) await sleep(Math.min(options.idlePollMs, remainingMs), signal);
    }
    return [...batch.values()];
  }

  async function invokeOnce(event: SQSEvent, messageIds: string[]): Promise<Set<string>> {
    counters.invocations++;
    try {
      // A fresh copy per invocation: a handler that mutates its event must not affect the twin delivery.
      const outcome = interpretBatchResponse(await options.invoke(structuredClone(event)), messageIds);
      if (outcome.kind === "success") return new Set();
      if (outcome.kind === "partial") return outcome.failed;
      counters.handlerErrors++;
      logger.error(`${entry.id}: invalid batch response, the whole batch fails`, { reason: outcome.reason });
    } catch (error) {
      counters.handlerErrors++;
      logger.error(`${entry.id} failed; its batch will be redelivered`, {
        messages: messageIds.length,
        ...errorDetails(error),
      });
    }
    return new Set(messageIds);
  }

  async function deleteMessages(messages: Message[]): Promise<void> {
    const bySource = Map.groupBy(messages, (message) => sourceOf.get(message.ReceiptHandle ?? "") ?? queueUrl);
    for (const [url, held] of bySource) {
      for (let start = 0; start < held.length; start += MAX_RECEIVE) {
        const chunk = held.slice(start, start + MAX_RECEIVE);
        try {
          const { Failed } = await sqs.send(
            new DeleteMessageBatchCommand({
              QueueUrl: url,
              Entries: chunk.map((message, index) => ({ Id: String(index), ReceiptHandle: message.ReceiptHandle })),
            }),
          );
          if (Failed?.length)
            logger.error(`${entry.id}: could not delete ${Failed.length} message(s)`, { failed: Failed });
        } catch (error) {
          logger.error(`${entry.id}: DeleteMessageBatch failed`, errorDetails(error));
        }
      }
    }
  }

  async function processBatch(messages: Message[]): Promise<void> {
    counters.messages += messages.length;
    const event = toSqsEvent(messages, queueArn, options.region);
    const messageIds = event.Records.map((record) => record.messageId);
    const deliver = () => invokeOnce(event, messageIds);
    let outcomes: Set<string>[];
    if (!options.deliverEachBatchTwice) {
      outcomes = [await deliver()];
    } else {
      const concurrently = twinConcurrently();
      counters.twinInvocations++;
      if (concurrently) counters.concurrentTwins++;
      outcomes = concurrently ? await Promise.all([deliver(), deliver()]) : [await deliver(), await deliver()];
    }
    // A message failed in either delivery stays on the queue.
    const failed = new Set(outcomes.flatMap((outcome) => [...outcome]));
    const succeeded = messages.filter((message) => !failed.has(message.MessageId ?? ""));
    counters.succeeded += succeeded.length;
    counters.failed += messages.length - succeeded.length;
    await deleteMessages(succeeded);
    release(messages);
  }

  async function pollLoop(): Promise<void> {
    let consecutiveErrors = 0;
    while (!signal.aborted) {
      try {
        const messages = await receiveBatch();
        consecutiveErrors = 0;
        // Even when stopping, a batch already received is processed (not lost to its visibility timeout).
        if (messages.length > 0) await processBatch(messages);
      } catch (error) {
        if (signal.aborted && isAbort(error)) break;
        consecutiveErrors++;
        logger.error(`${entry.id}: polling ${queueUrl} failed`, errorDetails(error));
        await sleep(Math.min(options.idlePollMs * 2 ** consecutiveErrors, MAX_ERROR_BACKOFF_MS), signal);
      }
    }
  }

  const loops = Array.from({ length: Math.max(1, options.pollers) }, () => pollLoop());

  return {
    stats: () => ({ ...counters }),
    async stop() {
      abort.abort();
      await Promise.allSettled(loops);
    },
  };
}
