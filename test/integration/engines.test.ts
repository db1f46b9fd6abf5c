/**
 * The test engines themselves: a DynamoDB Local that cannot have its port is an error (not
 * a silent share of whatever answers there), and a test stack leaves nothing behind.
 */
import { DynamoDBClient, ListTablesCommand } from "@aws-sdk/client-dynamodb";
import { ListQueuesCommand, SQSClient } from "@aws-sdk/client-sqs";
import { afterAll, describe, expect, inject, it } from "vitest";
import { type Engine, startDynamoDbLocal } from "../../infra/local/engines.ts";
import { startTestStack } from "../support/stack.ts";

const local = { region: "us-east-1", credentials: { accessKeyId: "local", secretAccessKey: "local" } };

describe("DynamoDB Local", () => {
  const started: Engine[] = [];
  afterAll(() => Promise.all(started.map((engine) => engine.stop())));

  it("refuses a port another DynamoDB Local answers on, instead of sharing it", async () => {
    const first = await startDynamoDbLocal();
    started.push(first);
    const port = Number(new URL(first.endpoint).port);
    await expect(
      startDynamoDbLocal({ port }).then((second) => {
        started.push(second);
        return second;
      }),
    ).rejects.toThrow(new RegExp(`port ${port}`));
  });
});

describe("a test stack", () => {
  it("deletes its table and queues when it stops", async () => {
    const stack = await startTestStack();
    const dynamodb = new DynamoDBClient({ ...local, endpoint: inject("dynamodbEndpoint") });
    const sqs = new SQSClient({ ...local, endpoint: inject("sqsEndpoint") });
    const prefix = stack.tableName;
    const tables = async () => (await dynamodb.send(new ListTablesCommand({}))).TableNames ?? [];
    const queues = async () => (await sqs.send(new ListQueuesCommand({ QueueNamePrefix: prefix }))).QueueUrls ?? [];
    expect(await tables()).toContain(stack.tableName);
    expect((await queues()).length).toBeGreaterThan(0);

    await stack.stop();
    expect(await tables()).not.toContain(stack.tableName);
    expect(await queues()).toEqual([]);
    dynamodb.destroy();
    sqs.destroy();
  });
});
