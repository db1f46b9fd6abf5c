/**
 * Replaying the stream-failure queue against the local engines: DynamoDB Local's stream
 * holds the records, fauxqs the on-failure messages (shaped as Lambda sends them: the
 * batch's shard and sequence-number range, not its records); the Lambda invoke is injected.
 */
import { randomUUID } from "node:crypto";
import { DescribeTableCommand, DynamoDBClient, PutItemCommand, UpdateItemCommand } from "@aws-sdk/client-dynamodb";
import {
  DescribeStreamCommand,
  DynamoDBStreamsClient,
  GetShardIteratorCommand,
} from "@aws-sdk/client-dynamodb-streams";
import {
  CreateQueueCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  SendMessageCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import type { DynamoDBRecord } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createTable, deleteTable } from "../../infra/local/resources.ts";
import { getRecordsAsJson } from "../../infra/local/stream-wire.ts";
import { replayStreamFailures, type StreamFailure } from "../../infra/scripts/stream-replay.ts";
import { CALL_ENTITY, JOB_ENTITY, ROLLUP_DELTA_ENTITY } from "../../shared/stream-entities.ts";

const region = "us-east-1";
const credentials = { accessKeyId: "local", secretAccessKey: "local" };
const dynamodb = new DynamoDBClient({ region, endpoint: inject("dynamodbEndpoint"), credentials });
const streams = new DynamoDBStreamsClient({ region, endpoint: inject("dynamodbEndpoint"), credentials });
const sqs = new SQSClient({ region, endpoint: inject("sqsEndpoint"), credentials });

/** How CloudFormation names the deployed functions: stack, logical id, suffix. */
const routerArn = "arn:aws:lambda:us-east-1:123456789012:function:McjService-streamrouterFunction1A2B3C-AbCdEf";
const applierArn = "arn:aws:lambda:us-east-1:123456789012:function:McjService-rollupapplierFunction9F8E-XyZ";

describe("replaying the stream-failure queue", () => {
  const tableName = `replay-test-${randomUUID().slice(0, 8)}`;
  /** Each test's own stream-failure queue: messages a test keeps must not reach the next one. */
  const queueUrls: string[] = [];
  async function newQueue(): Promise<string> {
    const { QueueUrl } = await sqs.send(
      new CreateQueueCommand({ QueueName: `${tableName}-stream-failures-${queueUrls.length}` }),
    );
    queueUrls.push(QueueUrl ?? "");
    return QueueUrl ?? "";
  }
  let streamArn = "";
  let shardId = "";
  /** Every record of the table's stream, in order: pk → sequence number. */
  const sequenceOf = new Map<string, string>();

  const put = (pk: string, entity: string) =>
    dynamodb.send(
      new PutItemCommand({ TableName: tableName, Item: { pk: { S: pk }, sk: { S: "item" }, entity: { S: entity } } }),
    );

  beforeAll(async () => {
    await createTable(dynamodb, tableName);
    await put("call-1", CALL_ENTITY); // INSERT of a call: the router's
    await put("job-1", JOB_ENTITY); // INSERT of a job: nobody's
    await put("delta-1", ROLLUP_DELTA_ENTITY); // the rollup applier's
    await dynamodb.send(
      new UpdateItemCommand({
        TableName: tableName,
        Key: { pk: { S: "job-1" }, sk: { S: "item" } },
        UpdateExpression: "SET #s = :s",
        ExpressionAttributeNames: { "#s": "status" },
        ExpressionAttributeValues: { ":s": { S: "PROCESSING" } },
      }),
    ); // MODIFY of a job: the router's
    await put("call-2", CALL_ENTITY);
    await put("call-3", CALL_ENTITY);

    const { Table } = await dynamodb.send(new DescribeTableCommand({ TableName: tableName }));
    const { StreamDescription } = await streams.send(new DescribeStreamCommand({ StreamArn: Table?.LatestStreamArn }));
    streamArn = StreamDescription?.StreamArn ?? "";
    shardId = StreamDescription?.Shards?.[0]?.ShardId ?? "";
    const { ShardIterator } = await streams.send(
      new GetShardIteratorCommand({ StreamArn: streamArn, ShardId: shardId, ShardIteratorType: "TRIM_HORIZON" }),
    );
    const page = await getRecordsAsJson(streams, { ShardIterator: ShardIterator ?? "", Limit: 100 });
    for (const record of page.Records ?? []) {
      const pk = record.dynamodb?.Keys?.pk?.S ?? "";
      sequenceOf.set(sequenceOf.has(pk) ? `${pk}#modify` : pk, record.dynamodb?.SequenceNumber ?? "");
    }
    expect(sequenceOf.size).toBe(6);
  });
  afterAll(async () => {
    await deleteTable(dynamodb, tableName);
    for (const QueueUrl of queueUrls) await sqs.send(new DeleteQueueCommand({ QueueUrl }));
    for (const client of [dynamodb, streams, sqs]) client.destroy();
  });

  /** The message Lambda sends when it gives up on the batch from `first` to `last`. */
  function failureOf(functionArn: string, first: string, last: string): StreamFailure {
    return {
      requestContext: {
        requestId: randomUUID(),
        functionArn,
        condition: "RetryAttemptsExhausted",
        approximateInvokeCount: 11,
      },
      responseContext: { statusCode: 200, executedVersion: "$LATEST", functionError: "Unhandled" },
      version: "1.0",
      timestamp: new Date().toISOString(),
      DDBStreamBatchInfo: {
        shardId,
        startSequenceNumber: sequenceOf.get(first) ?? "",
        endSequenceNumber: sequenceOf.get(last) ?? "",
        approximateArrivalOfFirstRecord: new Date().toISOString(),
        approximateArrivalOfLastRecord: new Date().toISOString(),
        batchSize: 4,
        streamArn,
      },
    };
  }

  const send = async (queueUrl: string, body: unknown) =>
    (await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(body) }))).MessageId ?? "";

  async function messagesLeft(queueUrl: string): Promise<number> {
    const { Attributes } = await sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: queueUrl,
        AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
      }),
    );
    return Number(Attributes?.ApproximateNumberOfMessages) + Number(Attributes?.ApproximateNumberOfMessagesNotVisible);
  }

  const keysOf = (records: DynamoDBRecord[]) =>
    records.map((record) => `${record.eventName} ${record.dynamodb?.Keys?.pk?.S}`);

  it("invokes the named consumer with its records of the range, in order, and deletes the message", async () => {
    const queueUrl = await newQueue();
    const invocations: { functionName: string; keys: string[] }[] = [];
    const routerMessage = await send(queueUrl, failureOf(routerArn, "call-1", "call-2"));
    const applierMessage = await send(queueUrl, failureOf(applierArn, "call-1", "call-3"));
    const outcomes = await replayStreamFailures({
      sqs,
      streams,
      queueUrl,
      region,
      visibilityTimeoutSeconds: 30,
      invoke: async (functionName, event) => {
        invocations.push({ functionName, keys: keysOf(event.Records) });
        expect(event.Records.every((record) => record.eventSource === "aws:dynamodb")).toBe(true);
        return { batchItemFailures: [] };
      },
    });
    expect(outcomes).toEqual(
      expect.arrayContaining([
        {
          messageId: routerMessage,
          status: "replayed",
          consumer: "stream-router",
          functionName: routerArn,
          records: 3,
        },
        {
          messageId: applierMessage,
          status: "replayed",
          consumer: "rollup-applier",
          functionName: applierArn,
          records: 1,
        },
      ]),
    );
    // Only what each consumer's filter lets through: the job's INSERT and other entities are left out.
    expect(invocations).toEqual(
      expect.arrayContaining([
        { functionName: routerArn, keys: ["INSERT call-1", "MODIFY job-1", "INSERT call-2"] },
        { functionName: applierArn, keys: ["INSERT delta-1"] },
      ]),
    );
    expect(invocations).toHaveLength(2);
    expect(await messagesLeft(queueUrl)).toBe(0);
  });

  it("keeps the message when the function fails or reports failed records, or the message is unreadable", async () => {
    const queueUrl = await newQueue();
    const thrown = await send(queueUrl, failureOf(routerArn, "call-2", "call-3"));
    const partial = await send(queueUrl, failureOf(routerArn, "job-1#modify", "job-1#modify"));
    const unreadable = await send(queueUrl, { hello: "world" });
    const outcomes = await replayStreamFailures({
      sqs,
      streams,
      queueUrl,
      region,
      visibilityTimeoutSeconds: 30,
      invoke: async (_functionName, event) => {
        const keys = keysOf(event.Records);
        if (keys.includes("INSERT call-3")) throw new Error("Unhandled: table unavailable");
        return { batchItemFailures: [{ itemIdentifier: event.Records[0]?.dynamodb?.SequenceNumber }] };
      },
    });
    expect(outcomes).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          messageId: thrown,
          status: "failed",
          detail: expect.stringMatching(/table unavailable/),
        }),
        expect.objectContaining({
          messageId: partial,
          status: "failed",
          detail: expect.stringMatching(/failed records/),
        }),
        expect.objectContaining({ messageId: unreadable, status: "unreadable" }),
      ]),
    );
    expect(outcomes).toHaveLength(3);
    expect(await messagesLeft(queueUrl)).toBe(3);
  });

  it("uses the consumer and function given instead of the message's", async () => {
    const queueUrl = await newQueue();
    const message = await send(
      queueUrl,
      failureOf("arn:aws:lambda:us-east-1:123456789012:function:renamed", "call-1", "call-3"),
    );
    const invoked: string[] = [];
    const outcomes = await replayStreamFailures({
      sqs,
      streams,
      queueUrl,
      region,
      consumerId: "rollup-applier",
      functionName: "my-applier",
      invoke: async (functionName, event) => {
        invoked.push(`${functionName}: ${keysOf(event.Records).join(", ")}`);
        return null;
      },
    });
    expect(outcomes).toEqual([
      { messageId: message, status: "replayed", consumer: "rollup-applier", functionName: "my-applier", records: 1 },
    ]);
    expect(invoked).toEqual(["my-applier: INSERT delta-1"]);
  });
});
