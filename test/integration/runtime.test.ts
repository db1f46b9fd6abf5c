/**
 * The local runtime against the real engines (DynamoDB Local, fauxqs): SQS partial batch
 * failures and redrive, duplicate delivery, and stream filtering, retries and the stream
 * read once for all its consumers — with fixture handlers, not the service's.
 */
import { randomUUID } from "node:crypto";
import { DynamoDBClient, PutItemCommand, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import { DynamoDBStreamsClient, GetRecordsCommand } from "@aws-sdk/client-dynamodb-streams";
import {
  GetQueueAttributesCommand,
  ListQueuesCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import type { SQSEvent } from "aws-lambda";
import { afterAll, afterEach, describe, expect, inject, it, vi } from "vitest";
import { createQueues, createTable } from "../../infra/local/resources.ts";
import { type LocalRuntime, type LocalRuntimeOptions, startLocalRuntime } from "../../infra/local/runtime.ts";
import { openSharedStream } from "../../infra/local/shared-stream.ts";
import { sleep } from "../../shared/concurrency.ts";
import { resetConfig } from "../../shared/config.ts";
import { sendMessages as sendServiceMessages, workMessage } from "../../shared/pipeline/queue.ts";
import type { WorkItem } from "../../shared/schemas/job.ts";
import type { QueueName } from "../../shared/table.ts";
import type { QueueConsumerEntry, StreamConsumerEntry, Wiring } from "../../shared/wiring.ts";
import { sqsDeliveries } from "../fixtures/sqs-consumer.ts";
import { streamDeliveries } from "../fixtures/stream-consumer.ts";

const region = "us-east-1";
const credentials = { accessKeyId: "local", secretAccessKey: "local" };
const quietLogger = { info: () => {}, error: () => {} };

// The engines are started once for the run by test/global-setup.ts.
const endpoints = { dynamodbEndpoint: inject("dynamodbEndpoint"), sqsEndpoint: inject("sqsEndpoint") };
const sqs = new SQSClient({ region, endpoint: endpoints.sqsEndpoint, credentials });
const dynamodb = new DynamoDBClient({ region, endpoint: endpoints.dynamodbEndpoint, credentials });
let runtime: LocalRuntime | undefined;

afterEach(async () => {
  await runtime?.stop();
  runtime = undefined;
});
afterAll(() => {
  sqs.destroy();
  dynamodb.destroy();
});

const emptyWiring: Wiring = {
  authorizer: { id: "api-authorizer", entry: "functions/api/authorizer.ts", access: {} },
  routes: [],
  queueConsumers: [],
  streamConsumers: [],
  schedules: [],
};

/**
 * A fresh table and queues (1 s visibility, 3 receives before the DLQ) and the runtime on
 * them; `beforeStart` may write to the table first (the stream is read from its horizon).
 */
async function startRuntime(
  wiring: Partial<Wiring>,
  options: Partial<LocalRuntimeOptions> = {},
  beforeStart?: (tableName: string) => Promise<void>,
) {
  const suffix = randomUUID().slice(0, 8);
  const tableName = `runtime-test-${suffix}`;
  await createTable(dynamodb, tableName);
  await beforeStart?.(tableName);
  const queues = await createQueues(sqs, `runtime-test-${suffix}`, {
    work: { visibilityTimeoutSeconds: 1, maxReceiveCount: 3 },
    dispatch: { visibilityTimeoutSeconds: 1, maxReceiveCount: 3 },
  });
  const queueUrls = {
    work: queues.work.url,
    dispatch: queues.dispatch.url,
    webhook: queues.webhook.url,
    batch: queues.batch.url,
  } satisfies Record<QueueName, string>;
  runtime = await startLocalRuntime({
    wiring: { ...emptyWiring, ...wiring },
    dynamodbEndpoint: endpoints.dynamodbEndpoint,
    sqsEndpoint: endpoints.sqsEndpoint,
    region,
    tableName,
    queueUrls,
    idlePollMs: 50,
    logger: quietLogger,
    ...options,
  });
  return { runtime, tableName, queues };
}

async function waitFor<T>(
  check: () => Promise<T | undefined> | T | undefined,
  what: string,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const result = await check();
    if (result !== undefined && result !== false) return result;
    await sleep(100);
  }
  throw new Error(`Timed out waiting for ${what}`);
}

async function sendMessages(queueUrl: string, bodies: object[]): Promise<string[]> {
  const { Successful } = await sqs.send(
    new SendMessageBatchCommand({
      QueueUrl: queueUrl,
      Entries: bodies.map((body, index) => ({
        Id: String(index),
        MessageBody: JSON.stringify(body),
        MessageAttributes: { origin: { DataType: "String", StringValue: "runtime-test" } },
      })),
    }),
  );
  return (Successful ?? []).map((entry) => entry.MessageId as string);
}

async function messagesLeft(queueUrl: string): Promise<number> {
  const { Attributes } = await sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: queueUrl,
      AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    }),
  );
  return (
    Number(Attributes?.ApproximateNumberOfMessages ?? 0) +
    Number(Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0)
  );
}

/** Messages received by a consumer and not yet deleted (invisible). */
async function messagesInFlight(queueUrl: string): Promise<number> {
  const { Attributes } = await sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["ApproximateNumberOfMessagesNotVisible"] }),
  );
  return Number(Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0);
}

async function drain(queueUrl: string): Promise<string[]> {
  const bodies: string[] = [];
  for (;;) {
    const { Messages } = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
    );
    if (!Messages?.length) return bodies;
    bodies.push(...Messages.map((message) => message.Body ?? ""));
  }
}

/** The service's own clients (as the dispatcher and evaluator send) against this runtime's engines. */
function useServiceClients(tableName: string) {
  Object.assign(process.env, {
    TABLE_NAME: tableName,
    SQS_ENDPOINT: endpoints.sqsEndpoint,
    AWS_REGION: region,
    AWS_ACCESS_KEY_ID: credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
  });
  resetConfig();
}

const sqsConsumer = (id: string, queue: QueueName, extra: Partial<QueueConsumerEntry> = {}): QueueConsumerEntry => ({
  id,
  entry: "test/fixtures/sqs-consumer.ts",
  queue,
  access: {},
  batchSize: 10,
  maxBatchingWindowSeconds: 0,
  maxConcurrency: 2,
  ...extra,
});

describe("local runtime: SQS consumers", { timeout: 60_000 }, () => {
  it("deletes successes, redelivers batch item failures and lets the redrive policy move them to the DLQ", async () => {
    const id = `sqs-${randomUUID().slice(0, 6)}`;
    const { queues } = await startRuntime({ queueConsumers: [sqsConsumer(id, "work")] });
    const ids = await sendMessages(queues.work.url, [
      { n: 1 },
      { n: 2, fail: "always" },
      { n: 3 },
      { n: 4, fail: "always" },
      { n: 5 },
    ]);
    const deliveriesOf = (messageId: string | undefined) =>
      sqsDeliveries.filter((delivery) => delivery.functionName === id && delivery.record.messageId === messageId);

    const dead: string[] = [];
    await waitFor(async () => {
      dead.push(...(await drain(queues.work.dlqUrl)));
      return dead.length >= 2 ? true : undefined;
    }, "both failed messages in the DLQ");
    expect(dead.map((body) => JSON.parse(body).n).sort()).toEqual([2, 4]);

    // Successes: delivered once, deleted.
    for (const messageId of [ids[0], ids[2], ids[4]]) expect(deliveriesOf(messageId)).toHaveLength(1);
    // Failures: delivered maxReceiveCount (3) times with a growing receive count, never deleted.
    for (const messageId of [ids[1], ids[3]]) {
      expect(deliveriesOf(messageId).map((delivery) => delivery.record.attributes.ApproximateReceiveCount)).toEqual([
        "1",
        "2",
        "3",
      ]);
    }
    expect(await messagesLeft(queues.work.url)).toBe(0);

    // The event looks like Lambda's.
    const record = deliveriesOf(ids[0])[0]?.record;
    expect(record).toMatchObject({
      messageId: ids[0],
      body: JSON.stringify({ n: 1 }),
      eventSource: "aws:sqs",
      eventSourceARN: queues.work.arn,
      awsRegion: region,
      md5OfBody: expect.stringMatching(/^[0-9a-f]{32}$/),
      receiptHandle: expect.any(String),
      attributes: {
        ApproximateReceiveCount: "1",
        SentTimestamp: expect.stringMatching(/^\d+$/),
        ApproximateFirstReceiveTimestamp: expect.stringMatching(/^\d+$/),
        SenderId: expect.any(String),
      },
      messageAttributes: {
        origin: { stringValue: "runtime-test", stringListValues: [], binaryListValues: [], dataType: "String" },
      },
    });
    const stats = runtime?.stats().queues.work;
    expect(stats).toMatchObject({ succeeded: 3, failed: 6, messages: 9, handlerErrors: 0 });
  });

  it("delivers to one consumer at once while another's many pollers sit in long polls, as Lambda's pollers do", async () => {
    const idle = `sqs-${randomUUID().slice(0, 6)}`;
    const busy = `sqs-${randomUUID().slice(0, 6)}`;
    const { queues } = await startRuntime(
      { queueConsumers: [sqsConsumer(idle, "work", { maxConcurrency: 60 }), sqsConsumer(busy, "webhook")] },
      { maxPollersPerQueue: 60 },
    );
    // Sixty pollers of the work queue now wait in 20-second long polls.
    await sleep(1_000);
    const [messageId] = await sendMessages(queues.webhook.url, [{ n: 1 }]);
    const sentAt = Date.now();
    await waitFor(
      () => (sqsDeliveries.some((d) => d.functionName === busy && d.record.messageId === messageId) ? true : undefined),
      "the webhook consumer's delivery",
    );
    expect(Date.now() - sentAt).toBeLessThan(5_000);
  });

  it("fails the whole batch when the handler throws or names an unknown item", async () => {
    const id = `sqs-${randomUUID().slice(0, 6)}`;
    const seen: string[] = [];
    let calls = 0;
    const { queues } = await startRuntime(
      { queueConsumers: [sqsConsumer(id, "work", { maxConcurrency: 1 })] },
      {
        handlerOverrides: {
          [id]: async (event) => {
            calls++;
            seen.push(...event.Records.map((record: { messageId: string }) => record.messageId));
            if (calls === 1) throw new Error("crash");
            if (calls === 2) return { batchItemFailures: [{ itemIdentifier: "not-in-batch" }] };
            return {};
          },
        },
      },
    );
    const ids = await sendMessages(queues.work.url, [{ n: 1 }]);
    await waitFor(() => (calls >= 3 ? true : undefined), "three deliveries");
    await waitFor(
      async () => ((await messagesLeft(queues.work.url)) === 0 ? true : undefined),
      "the message to be deleted",
    );
    expect(seen).toEqual([ids[0], ids[0], ids[0]]);
    expect(runtime?.stats().queues.work).toMatchObject({ invocations: 3, handlerErrors: 2, succeeded: 1, failed: 2 });
  });

  it("with deliverEachBatchTwice invokes twice with identical records and keeps a message failed in either", async () => {
    const id = `twice-${randomUUID().slice(0, 6)}`;
    const { queues } = await startRuntime(
      { queueConsumers: [sqsConsumer(id, "dispatch", { batchSize: 5, maxConcurrency: 1 })] },
      { deliverEachBatchTwice: true },
    );
    const ids = await sendMessages(queues.dispatch.url, [
      { n: 1 },
      { n: 2, fail: "secondCopyOfFirstReceive" },
      { n: 3 },
    ]);
    const deliveriesOf = (messageId: string | undefined) =>
      sqsDeliveries.filter((delivery) => delivery.functionName === id && delivery.record.messageId === messageId);

    await waitFor(() => (deliveriesOf(ids[1]).length >= 4 ? true : undefined), "the failed copy to come back");
    await waitFor(
      async () => ((await messagesLeft(queues.dispatch.url)) === 0 ? true : undefined),
      "every message deleted",
    );

    for (const messageId of [ids[0], ids[2]]) {
      const copies = deliveriesOf(messageId);
      expect(copies).toHaveLength(2);
      expect(copies[0]?.record).toEqual(copies[1]?.record);
      expect(copies[0]?.invocation).not.toBe(copies[1]?.invocation);
    }
    // Failed only in the second invocation: not deleted, so redelivered (twice again), then deleted.
    expect(deliveriesOf(ids[1]).map((delivery) => delivery.record.attributes.ApproximateReceiveCount)).toEqual([
      "1",
      "1",
      "2",
      "2",
    ]);
    expect(runtime?.stats().queues.dispatch).toMatchObject({ messages: 4, invocations: 4, succeeded: 3, failed: 1 });
  });

  it("with twinDelivery concurrent runs each batch's twin at the same time, queue and stream alike", async () => {
    const [queueId, streamId] = ["sqs", "stream"].map((kind) => `twin-${kind}-${randomUUID().slice(0, 6)}`) as [
      string,
      string,
    ];
    const running = new Map<string, number>();
    const overlapped = new Set<string>();
    /** Per batch: lets the first delivery go on once its twin has started too. */
    const twinStarted = new Map<string, () => void>();
    /**
     * Records whether a batch (same records) is still running when its twin starts. The first
     * delivery waits for its twin (at most 5 s, which a twin delivered afterwards would need).
     */
    const overlapping =
      (key: (event: { Records: Record<string, any>[] }) => string) =>
      async (event: { Records: Record<string, any>[] }) => {
        const batch = key(event);
        running.set(batch, (running.get(batch) ?? 0) + 1);
        if ((running.get(batch) ?? 0) > 1) {
          overlapped.add(batch);
          twinStarted.get(batch)?.();
        } else {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, 5_000);
            twinStarted.set(batch, () => {
              clearTimeout(timer);
              resolve();
            });
          });
        }
        running.set(batch, (running.get(batch) ?? 0) - 1);
        return { batchItemFailures: [] };
      };
    const { queues, tableName } = await startRuntime(
      {
        queueConsumers: [sqsConsumer(queueId, "work", { maxConcurrency: 1 })],
        streamConsumers: [streamConsumer(streamId, { filterPattern: {} })],
      },
      {
        deliverEachBatchTwice: true,
        twinDelivery: "concurrent",
        handlerOverrides: {
          [queueId]: overlapping((event) => `sqs:${event.Records.map((r) => r.receiptHandle).join()}`),
          [streamId]: overlapping((event) => `stream:${event.Records.map((r) => r.dynamodb.SequenceNumber).join()}`),
        },
      },
    );
    await sendMessages(queues.work.url, [{ n: 1 }]);
    await dynamodb.send(new PutItemCommand({ TableName: tableName, Item: { pk: { S: "p" }, sk: { S: "item" } } }));
    const stats = await waitFor(() => {
      const current = runtime?.stats();
      const done = current?.queues.work?.succeeded === 1 && (current?.streams[streamId]?.invocations ?? 0) >= 1;
      return done && [...running.values()].every((n) => n === 0) ? current : undefined;
    }, "both batches and their twins");
    expect([...overlapped].map((batch) => batch.split(":")[0]).sort()).toEqual(["sqs", "stream"]);
    expect(stats.queues.work).toMatchObject({ invocations: 2, twinInvocations: 1, concurrentTwins: 1 });
    expect(stats.streams[streamId]).toMatchObject({ invocations: 1, twinInvocations: 1, concurrentTwins: 1 });
  });

  it("gathers batches larger than one receive within the batching window", async () => {
    const id = `window-${randomUUID().slice(0, 6)}`;
    // A window long enough for a loaded machine; the batch goes as soon as it holds 25 messages.
    const { queues } = await startRuntime({
      queueConsumers: [sqsConsumer(id, "work", { batchSize: 25, maxBatchingWindowSeconds: 20, maxConcurrency: 1 })],
    });
    const bodies = Array.from({ length: 25 }, (_, n) => ({ n }));
    // Three bursts, each received (in flight) before the next is sent: Lambda would still make them one batch.
    const received = (count: number) => async () => (await messagesInFlight(queues.work.url)) === count || undefined;
    await sendMessages(queues.work.url, bodies.slice(0, 10));
    await waitFor(received(10), "the first burst to be received");
    await sendMessages(queues.work.url, bodies.slice(10, 20));
    await waitFor(received(20), "the second burst to be received");
    await sendMessages(queues.work.url, bodies.slice(20));
    await waitFor(
      () => (sqsDeliveries.filter((delivery) => delivery.functionName === id).length >= 25 ? true : undefined),
      "25 deliveries",
    );
    const invocations = new Set(
      sqsDeliveries.filter((delivery) => delivery.functionName === id).map((delivery) => delivery.invocation),
    );
    expect(invocations.size).toBe(1);
  });

  it("hands out an item sent back for its limiter turn ahead of its organization's fresh backlog", async () => {
    const id = `turns-${randomUUID().slice(0, 6)}`;
    const order: string[] = [];
    const { tableName, queues } = await startRuntime(
      { queueConsumers: [sqsConsumer(id, "work", { batchSize: 10, maxConcurrency: 2 })] },
      {
        handlerOverrides: {
          [id]: async (event: SQSEvent) => {
            for (const record of event.Records) {
              order.push((JSON.parse(record.body) as WorkItem).turnAt === undefined ? "fresh" : "turn");
            }
            await sleep(200);
            return { batchItemFailures: [] };
          },
        },
      },
    );
    useServiceClients(tableName);
    const item = (n: number): WorkItem => ({
      orgId: "org-a",
      jobId: "job-1",
      callId: `call-${n}`,
      metricId: "metric-1",
      metricVersion: 1,
    });
    // The evaluators are busy taking turns for a large job's fresh items when a batch comes
    // back for its turn: it must not wait until they are through them.
    await sendServiceMessages(
      queues.work.url,
      Array.from({ length: 60 }, (_, n) => workMessage(item(n))),
    );
    await sendServiceMessages(
      queues.work.url,
      Array.from({ length: 5 }, (_, n) => workMessage({ ...item(100 + n), turnAt: Date.now() })),
    );
    await waitFor(() => (order.length >= 65 ? true : undefined), "every message");
    expect(order.lastIndexOf("turn")).toBeLessThan(30);
  });

  it("serves the work queue fairly: a small group's messages go ahead of another group's backlog", async () => {
    const id = `fair-${randomUUID().slice(0, 6)}`;
    const order: string[] = [];
    const { tableName, queues } = await startRuntime(
      { queueConsumers: [sqsConsumer(id, "work", { batchSize: 10, maxConcurrency: 2 })] },
      {
        handlerOverrides: {
          // A slow consumer, so a backlog builds up: 2 pollers × 10 messages per 200 ms.
          [id]: async (event: SQSEvent) => {
            for (const record of event.Records) order.push((JSON.parse(record.body) as { org: string }).org);
            await sleep(200);
            return { batchItemFailures: [] };
          },
        },
      },
    );
    // The service's own client, as the dispatcher and evaluator send: its sends carry groups.
    useServiceClients(tableName);
    await sendServiceMessages(
      queues.work.url,
      Array.from({ length: 60 }, (_, n) => ({ body: JSON.stringify({ org: "a", n }), groupId: "org-a" })),
    );
    await sendServiceMessages(
      queues.work.url,
      Array.from({ length: 5 }, (_, n) => ({ body: JSON.stringify({ org: "b", n }), groupId: "org-b" })),
    );
    await waitFor(() => (order.length >= 65 ? true : undefined), "every message");
    // In arrival order (one list, as the emulator keeps a standard queue) b's would come last.
    const lastOfB = order.lastIndexOf("b");
    expect(lastOfB).toBeLessThan(30);
    expect(order.filter((org) => org === "a")).toHaveLength(60);
    // The groups' queues go with the runtime.
    await runtime?.stop();
    runtime = undefined;
    const { QueueUrls = [] } = await sqs.send(
      new ListQueuesCommand({ QueueNamePrefix: queues.work.url.split("/").at(-1) }),
    );
    expect(QueueUrls.filter((url) => url !== queues.work.url && !url.endsWith("-dlq"))).toEqual([]);
  });

  it("stops promptly, aborting idle long polls", async () => {
    const receives = { inFlight: 0, aborted: 0, answered: 0 };
    const streamId = `idle-${randomUUID().slice(0, 6)}`;
    const { runtime: started } = await startRuntime(
      {
        // Not the work queue: its fair-queue model waits for sends rather than long-polling.
        queueConsumers: [sqsConsumer(`idle-${randomUUID().slice(0, 6)}`, "dispatch", { maxConcurrency: 4 })],
        streamConsumers: [streamConsumer(streamId)],
      },
      {
        instrumentClient: (client) => {
          if (!(client instanceof SQSClient)) return;
          client.middlewareStack.add(
            (next, context) => async (args) => {
              if (context.commandName !== "ReceiveMessageCommand") return next(args);
              receives.inFlight++;
              try {
                const result = await next(args);
                receives.answered++;
                return result;
              } catch (error) {
                receives.aborted++;
                throw error;
              } finally {
                receives.inFlight--;
              }
            },
            { step: "initialize", name: "countReceives" },
          );
        },
      },
    );
    // Every poll loop sits in a long poll (20 s) on the empty queue; the stream reader idles.
    await waitFor(() => receives.inFlight === 4 || undefined, "four long polls");
    await waitFor(() => (started.stats().streams[streamId]?.shards ?? 0) >= 1 || undefined, "the stream reader");
    const began = Date.now();
    await started.stop();
    // Each long poll was cut short, not waited out: stop took far less than one long poll.
    expect(receives).toEqual({ inFlight: 0, aborted: 4, answered: 0 });
    expect(Date.now() - began).toBeLessThan(10_000);
  });
});

const streamConsumer = (id: string, extra: Partial<StreamConsumerEntry> = {}): StreamConsumerEntry => ({
  id,
  entry: "test/fixtures/stream-consumer.ts",
  access: {},
  batchSize: 10,
  retryAttempts: 2,
  maxRecordAgeSeconds: 3600,
  filterPattern: { eventName: ["MODIFY"], dynamodb: { NewImage: { kind: { S: ["match"] } } } },
  ...extra,
});

describe("local runtime: stream consumers", { timeout: 60_000 }, () => {
  it("delivers only records matching the filter and redelivers from a batch item failure", async () => {
    const id = `stream-${randomUUID().slice(0, 6)}`;
    let tableName = "";
    const put = (pk: string, kind: string, extra: Record<string, { BOOL: boolean }> = {}) =>
      dynamodb.send(
        new PutItemCommand({
          TableName: tableName,
          Item: { pk: { S: pk }, sk: { S: "item" }, kind: { S: kind }, ...extra },
        }),
      );
    const touch = (pk: string, version: number) =>
      dynamodb.send(
        new UpdateItemCommand({
          TableName: tableName,
          Key: { pk: { S: pk }, sk: { S: "item" } },
          UpdateExpression: "SET version = :v",
          ExpressionAttributeValues: { ":v": { N: String(version) } },
        }),
      );
    // Written before the runtime starts so all of it is one batch (read from the trim horizon).
    const { runtime: started } = await startRuntime({ streamConsumers: [streamConsumer(id)] }, {}, async (name) => {
      tableName = name;
      await put("a", "match"); // INSERTs: filtered out
      await put("b", "other");
      await touch("b", 1); // MODIFY of another kind: filtered out
      await put("c", "match", { failOnce: { BOOL: true } });
      await touch("a", 1); // matches
      await touch("c", 1); // matches, fails once
      await touch("a", 2); // matches, after the failure: redelivered with it
    });

    const mine = () => streamDeliveries.filter((delivery) => delivery.functionName === id);
    await waitFor(
      () => (mine().filter((d) => d.record.dynamodb?.Keys?.pk?.S === "a").length >= 3 ? true : undefined),
      "a's records",
    );
    await waitFor(() => (started.stats().streams[id]?.retries ?? 0) >= 1 || undefined, "the retry");
    await waitFor(() => (mine().length >= 5 ? true : undefined), "c's redelivery");

    const delivered = mine().map(
      ({ record }) => `${record.dynamodb?.Keys?.pk?.S}:${record.dynamodb?.NewImage?.version?.N}`,
    );
    for (const { record } of mine()) {
      expect(record.eventName).toBe("MODIFY");
      expect(record.dynamodb?.NewImage?.kind?.S).toBe("match");
    }
    // a:1 before the failure is delivered once; c:1 (failed) and a:2 (after it) are delivered again.
    expect(delivered.filter((key) => key === "a:1")).toHaveLength(1);
    expect(delivered.filter((key) => key === "c:1")).toHaveLength(2);
    expect(delivered.filter((key) => key === "a:2")).toHaveLength(2);
    expect(delivered.some((key) => key.startsWith("b:"))).toBe(false);
    // Exactly two invocations: the whole batch, then a retry from the failed record on.
    const invocations = [...new Set(mine().map((delivery) => delivery.invocation))].map((invocation) =>
      mine()
        .filter((delivery) => delivery.invocation === invocation)
        .map(({ record }) => `${record.dynamodb?.Keys?.pk?.S}:${record.dynamodb?.NewImage?.version?.N}`),
    );
    expect(invocations).toEqual([
      ["a:1", "c:1", "a:2"],
      ["c:1", "a:2"],
    ]);

    const record = mine()[0]?.record;
    expect(record).toMatchObject({
      eventID: expect.any(String),
      eventName: "MODIFY",
      eventVersion: "1.1",
      eventSource: "aws:dynamodb",
      awsRegion: region,
      eventSourceARN: expect.stringMatching(
        new RegExp(`^arn:aws:dynamodb:${region}:\\d{12}:table/${tableName}/stream/`),
      ),
      dynamodb: {
        Keys: { pk: { S: "a" }, sk: { S: "item" } },
        NewImage: { pk: { S: "a" }, kind: { S: "match" }, version: { N: "1" } },
        OldImage: { pk: { S: "a" }, kind: { S: "match" } },
        SequenceNumber: expect.stringMatching(/^\d+$/),
        SizeBytes: expect.any(Number),
        StreamViewType: "NEW_AND_OLD_IMAGES",
        ApproximateCreationDateTime: expect.any(Number),
      },
    });
    const createdSeconds = record?.dynamodb?.ApproximateCreationDateTime ?? 0;
    expect(Math.abs(createdSeconds - Date.now() / 1000)).toBeLessThan(120);
    expect(started.stats().streams[id]).toMatchObject({ filteredOut: 4, handlerErrors: 0, retries: 1 });
  });

  it("gathers records written over several polls into one batch within the batching window", async () => {
    const id = `stream-window-${randomUUID().slice(0, 6)}`;
    // A window long enough for a loaded machine to write three records within it.
    const { tableName, runtime: started } = await startRuntime({
      streamConsumers: [streamConsumer(id, { filterPattern: {}, batchSize: 4, maxBatchingWindowSeconds: 5 })],
    });
    const put = (pk: string) =>
      dynamodb.send(new PutItemCommand({ TableName: tableName, Item: { pk: { S: pk }, sk: { S: "item" } } }));
    const mine = () => streamDeliveries.filter((delivery) => delivery.functionName === id);
    // Three writes, each read from the stream before the next: without a window each would be a batch of its own.
    for (const [index, pk] of ["w1", "w2", "w3"].entries()) {
      await put(pk);
      await waitFor(() => (started.stats().streams[id]?.records ?? 0) > index || undefined, `${pk} to be read`);
    }
    // The window closes: the batch holds three of its four records.
    await waitFor(() => mine().length >= 3 || undefined, "the first batch");
    for (const pk of ["w4", "w5", "w6", "w7", "w8"]) await put(pk);
    await waitFor(() => (mine().length >= 8 ? true : undefined), "every record");
    const batches = [...new Set(mine().map((delivery) => delivery.invocation))].map((invocation) =>
      mine()
        .filter((delivery) => delivery.invocation === invocation)
        .map(({ record }) => record.dynamodb?.Keys?.pk?.S),
    );
    // A full batch (4 records) goes at once; the rest waits for its window.
    expect(batches).toEqual([["w1", "w2", "w3"], ["w4", "w5", "w6", "w7"], ["w8"]]);
  });

  it("gives up on a record after retryAttempts and goes on with the next ones", async () => {
    const id = `stream-${randomUUID().slice(0, 6)}`;
    const { tableName, runtime: started } = await startRuntime({
      streamConsumers: [streamConsumer(id, { retryAttempts: 2, filterPattern: {} })],
    });
    const put = (pk: string, extra: Record<string, { BOOL: boolean }> = {}) =>
      dynamodb.send(new PutItemCommand({ TableName: tableName, Item: { pk: { S: pk }, sk: { S: "item" }, ...extra } }));
    const mine = () => streamDeliveries.filter((delivery) => delivery.functionName === id);
    const deliveriesOf = (pk: string) => mine().filter((d) => d.record.dynamodb?.Keys?.pk?.S === pk);

    await put("poison", { failAlways: { BOOL: true } });
    await waitFor(
      () => ((started.stats().streams[id]?.discarded ?? 0) >= 1 ? true : undefined),
      "the poison record to be skipped",
    );
    await put("after");
    await waitFor(() => (deliveriesOf("after").length >= 1 ? true : undefined), "the record after the poison one");
    // One attempt and two retries.
    expect(deliveriesOf("poison")).toHaveLength(3);
    expect(deliveriesOf("after")).toHaveLength(1);
  });

  it("gives each consumer every record at its own pace, one retrying while the other goes on", async () => {
    const [fast, retrying] = ["fast", "retrying"].map((name) => `stream-${name}-${randomUUID().slice(0, 6)}`) as [
      string,
      string,
    ];
    const { tableName } = await startRuntime({
      streamConsumers: [
        streamConsumer(fast, { filterPattern: { dynamodb: { NewImage: { failOnce: { BOOL: [false] } } } } }),
        streamConsumer(retrying, { filterPattern: {} }),
      ],
    });
    const put = (pk: string, failOnce: boolean) =>
      dynamodb.send(
        new PutItemCommand({
          TableName: tableName,
          Item: { pk: { S: pk }, sk: { S: "item" }, failOnce: { BOOL: failOnce } },
        }),
      );
    await put("r1", false);
    await put("r2", true); // only `retrying` sees it: it fails there once
    for (const pk of ["r3", "r4", "r5"]) await put(pk, false);
    const keysOf = (id: string) =>
      streamDeliveries
        .filter((delivery) => delivery.functionName === id)
        .map(({ record }) => record.dynamodb?.Keys?.pk?.S);
    // The retry delivers r2 again with every record after it, in one invocation.
    await waitFor(() => (keysOf(retrying).filter((pk) => pk === "r2").length >= 2 ? true : undefined), "the retry");
    await waitFor(() => (keysOf(fast).includes("r5") ? true : undefined), "fast");
    expect(keysOf(fast)).toEqual(["r1", "r3", "r4", "r5"]);
    // Every record once, except the failed one and those after it in its batch, which come again.
    const retried = keysOf(retrying);
    expect(new Set(retried)).toEqual(new Set(["r1", "r2", "r3", "r4", "r5"]));
    expect(retried.filter((pk) => pk === "r2")).toHaveLength(2);
    expect(retried.filter((pk) => pk === "r1")).toHaveLength(1);
  });

  const openTestStream = (tableName: string, streams: DynamoDBStreamsClient, consumerIds: string[], quietMs: number) =>
    openSharedStream({ tableName, dynamodb, streams, region, consumerIds, quietMs, logger: quietLogger });

  it("delivers images in Lambda's JSON form: base64 binaries, empty maps, nested lists", async () => {
    const tableName = `runtime-test-${randomUUID().slice(0, 8)}`;
    await createTable(dynamodb, tableName);
    const bytes = Uint8Array.from([0, 1, 2, 250]);
    await dynamodb.send(
      new PutItemCommand({
        TableName: tableName,
        Item: {
          pk: { S: "binary" },
          sk: { S: "item" },
          blob: { B: bytes },
          blobs: { BS: [bytes, Uint8Array.from([7])] },
          empty: { M: {} },
          nested: { L: [{ B: bytes }, { M: { n: { N: "1.50" } } }, { NULL: true }, { BOOL: false }] },
        },
      }),
    );
    const streams = new DynamoDBStreamsClient({ region, endpoint: endpoints.dynamodbEndpoint, credentials });
    try {
      const stream = await openTestStream(tableName, streams, ["a"], 0);
      const [shard] = await stream.listShards();
      const { records } = await stream.read(shard?.ShardId as string, 0, 10);
      expect(records).toHaveLength(1);
      const base64 = Buffer.from(bytes).toString("base64");
      expect(records[0]?.dynamodb?.NewImage).toEqual({
        pk: { S: "binary" },
        sk: { S: "item" },
        blob: { B: base64 },
        blobs: { BS: expect.arrayContaining([base64, Buffer.from([7]).toString("base64")]) },
        empty: { M: {} },
        nested: { L: [{ B: base64 }, { M: { n: { N: "1.50" } } }, { NULL: true }, { BOOL: false }] },
      });
      expect(records[0]?.dynamodb?.Keys).toEqual({ pk: { S: "binary" }, sk: { S: "item" } });
      expect(Number.isInteger(records[0]?.dynamodb?.ApproximateCreationDateTime)).toBe(true);
    } finally {
      streams.destroy();
    }
  });

  it("fetches each record once for all consumers and keeps it until the last one has handled it", async () => {
    const tableName = `runtime-test-${randomUUID().slice(0, 8)}`;
    await createTable(dynamodb, tableName);
    for (let i = 0; i < 30; i++) {
      await dynamodb.send(
        new PutItemCommand({ TableName: tableName, Item: { pk: { S: `p${i}` }, sk: { S: "item" } } }),
      );
    }
    const streams = new DynamoDBStreamsClient({ region, endpoint: endpoints.dynamodbEndpoint, credentials });
    const sent = vi.spyOn(streams, "send");
    try {
      const stream = await openTestStream(tableName, streams, ["a", "b", "c"], 60_000);
      const [shard] = await stream.listShards();
      const shardId = shard?.ShardId as string;
      const keysRead = async (from: number, limit: number) =>
        (await stream.read(shardId, from, limit)).records.map((record) => record.dynamodb?.Keys?.pk?.S);
      const everyKey = Array.from({ length: 30 }, (_, i) => `p${i}`);
      // Three consumers, three paces, one fetch.
      expect(await keysRead(0, 30)).toEqual(everyKey);
      expect([...(await keysRead(0, 10)), ...(await keysRead(10, 20))]).toEqual(everyKey);
      expect(await keysRead(5, 3)).toEqual(["p5", "p6", "p7"]);
      const getRecords = () => sent.mock.calls.filter(([command]) => command instanceof GetRecordsCommand).length;
      expect(getRecords()).toBe(1);
      // Nothing new within the quiet time after the last fetch found the end: no fetch either.
      expect(await keysRead(30, 10)).toEqual([]);
      expect(await keysRead(30, 10)).toEqual([]);
      expect(getRecords()).toBe(2);

      stream.handled(shardId, "a", 30);
      stream.handled(shardId, "b", 30);
      // "c" has handled only the first 8: those may go, the rest must stay for it.
      stream.handled(shardId, "c", 8);
      expect(await keysRead(8, 30)).toEqual(everyKey.slice(8));
      await expect(stream.read(shardId, 7, 1)).rejects.toThrow(/dropped before it was handled/);
    } finally {
      streams.destroy();
    }
  });
});
