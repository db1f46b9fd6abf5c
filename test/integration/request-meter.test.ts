/**
 * The benchmark's request meter on the real engines: requests per action, DynamoDB capacity
 * as AWS bills it (transactions at 2×, their updates by the size of the item a transaction
 * put), messages accepted by SQS, and nothing counted for an unmetered client.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { CreateQueueCommand, SendMessageBatchCommand, SQSClient } from "@aws-sdk/client-sqs";
import { DynamoDBDocumentClient, GetCommand, PutCommand, TransactWriteCommand } from "@aws-sdk/lib-dynamodb";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { createRequestMeter } from "../../bench/request-meter.ts";
import { createTable } from "../../infra/local/resources.ts";

const region = "us-east-1";
const credentials = { accessKeyId: "local", secretAccessKey: "local" };
const tableName = `meter-${Date.now()}`;
const key = (id: string) => ({ pk: `ORG#o1#ROLLUPDELTA#${id}`, sk: "DELTA" });

describe("request meter", () => {
  const endpoint = inject("dynamodbEndpoint");
  const base = new DynamoDBClient({ region, endpoint, credentials });
  const documents = DynamoDBDocumentClient.from(base);
  const unmetered = DynamoDBDocumentClient.from(new DynamoDBClient({ region, endpoint, credentials }));
  const meter = createRequestMeter();

  beforeAll(async () => {
    await createTable(new DynamoDBClient({ region, endpoint, credentials }), tableName, { stream: false });
    meter.attach(documents);
  });

  it("counts DynamoDB requests and the capacity AWS would bill, through a document client", async () => {
    meter.reset();
    // 1.5 KB: 2 write units standard, 4 in a transaction.
    const large = { ...key("large"), entity: "RollupDelta", payload: "x".repeat(1500) };
    await documents.send(
      new PutCommand({ TableName: tableName, Item: { ...key("plain"), payload: "y".repeat(1500) } }),
    );
    await documents.send(new TransactWriteCommand({ TransactItems: [{ Put: { TableName: tableName, Item: large } }] }));
    // Billed by the size of the item put above (DynamoDB Local's report is only a floor).
    await documents.send(
      new TransactWriteCommand({
        TransactItems: [
          {
            Update: {
              TableName: tableName,
              Key: key("large"),
              UpdateExpression: "SET touched = :t",
              ExpressionAttributeValues: { ":t": true },
            },
          },
        ],
      }),
    );
    // Three small puts: 6 units, although DynamoDB Local reports 2 (it counts equal units once).
    await documents.send(
      new TransactWriteCommand({
        TransactItems: ["a", "b", "c"].map((id) => ({
          Put: { TableName: tableName, Item: { ...key(id), entity: "MetricValue" } },
        })),
      }),
    );
    await documents.send(new GetCommand({ TableName: tableName, Key: key("plain"), ConsistentRead: true }));
    await unmetered.send(new GetCommand({ TableName: tableName, Key: key("plain") }));

    const counts = meter.counts();
    expect(counts.requests).toEqual({ PutItem: 1, TransactWriteItems: 3, GetItem: 1 });
    expect(counts.writeUnits).toBe(2 + 4 + 4 + 6);
    expect(counts.writeUnitsByKind).toEqual({
      PutItem: 2,
      "Put RollupDelta": 4,
      "Update ROLLUPDELTA": 4,
      "Put MetricValue": 6,
    });
    expect(counts.readUnits).toBe(1);
    expect(Object.keys(counts.roundTripMs).sort()).toEqual(["GetItem", "PutItem", "TransactWriteItems"]);
  });

  it("counts a failed request and bills it nothing", async () => {
    meter.reset();
    const failing = new PutCommand({
      TableName: tableName,
      Item: key("plain"),
      ConditionExpression: "attribute_not_exists(pk)",
    });
    await expect(documents.send(failing)).rejects.toThrow(/conditional/i);
    expect(meter.counts()).toMatchObject({ requests: { PutItem: 1 }, writeUnits: 0 });
  });

  it("counts messages SQS accepted, per queue", async () => {
    const sqs = new SQSClient({ region, endpoint: inject("sqsEndpoint"), credentials });
    meter.attach(sqs);
    meter.reset();
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: `meter-${Date.now()}-work` }));
    await sqs.send(
      new SendMessageBatchCommand({
        QueueUrl,
        Entries: ["a", "b", "c"].map((id) => ({ Id: id, MessageBody: id })),
      }),
    );
    expect(meter.messagesSent("-work")).toBe(3);
    expect(meter.messagesSent("-dispatch")).toBe(0);
    expect(meter.counts().requests).toEqual({ CreateQueue: 1, SendMessageBatch: 1 });
  });
});
