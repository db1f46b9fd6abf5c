import { ConditionalCheckFailedException } from "@aws-sdk/client-dynamodb";
import { SendMessageBatchCommand, SQSClient } from "@aws-sdk/client-sqs";
import { DynamoDBDocumentClient, GetCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import type { DynamoDBRecord } from "aws-lambda";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { finalizeJobs, finishedStatus } from "../../shared/pipeline/finalize.ts";

const ddb = mockClient(DynamoDBDocumentClient);
const sqsMock = mockClient(SQSClient);
// Read when config() first loads (lazily, on the first finalize).
process.env.WEBHOOK_QUEUE_URL ??= "http://sqs.local/000000000000/webhook";
const job = (fields: Record<string, unknown>) => ({
  entity: "Job",
  orgId: "o1",
  id: "j1",
  status: "PROCESSING",
  totalItems: 4,
  completedItems: 0,
  failedItems: 0,
  ...fields,
});
const record = (image: Record<string, unknown>, sequence = "1"): DynamoDBRecord => ({
  eventName: "MODIFY",
  dynamodb: { NewImage: marshall(image) as never, SequenceNumber: sequence },
});

describe("finishedStatus", () => {
  it("finishes only PROCESSING jobs whose counters reached the total", () => {
    expect(finishedStatus(job({ completedItems: 3 }))).toBeUndefined();
    expect(finishedStatus(job({ completedItems: 3, failedItems: 1 }))).toBe("COMPLETED");
    expect(finishedStatus(job({ failedItems: 4 }))).toBe("FAILED");
    expect(finishedStatus(job({ completedItems: 4, status: "CANCELED" }))).toBeUndefined();
    expect(finishedStatus(job({ completedItems: 4, entity: "JobPage" }))).toBeUndefined();
  });
});

describe("finalizeJobs", () => {
  beforeEach(() => {
    ddb.reset();
    sqsMock.reset();
  });

  it("sets COMPLETED conditionally on PROCESSING", async () => {
    ddb.on(UpdateCommand).resolves({ Attributes: job({ status: "COMPLETED" }) });
    const response = await finalizeJobs([record(job({ completedItems: 4 }))]);
    expect(response.batchItemFailures).toEqual([]);
    const input = ddb.commandCalls(UpdateCommand)[0]!.args[0].input;
    expect(input.ConditionExpression).toContain("#status IN (:from0)");
    expect(input.ExpressionAttributeValues).toMatchObject({ ":from0": "PROCESSING", ":f0": "COMPLETED" });
  });

  it("is idempotent: a replayed record whose job already finished changes nothing and does not fail", async () => {
    ddb.on(UpdateCommand).rejects(new ConditionalCheckFailedException({ message: "no", $metadata: {} }));
    const response = await finalizeJobs([record(job({ completedItems: 4 }))]);
    expect(response.batchItemFailures).toEqual([]);
  });

  it("enqueues a job's webhook once: only the writer of the pending delivery, or for one never attempted", async () => {
    const ended = (sequence: string): DynamoDBRecord => ({
      eventName: "MODIFY",
      dynamodb: {
        NewImage: marshall(
          job({ status: "COMPLETED", completedItems: 4, webhookUrl: "https://hooks.example.com" }),
        ) as never,
        OldImage: marshall(job({ completedItems: 4 })) as never,
        SequenceNumber: sequence,
      },
    });
    sqsMock.on(SendMessageBatchCommand).resolves({ Successful: [], Failed: [] });

    ddb.on(UpdateCommand).resolves({});
    expect((await finalizeJobs([ended("1")])).batchItemFailures).toEqual([]);
    expect(sqsMock.commandCalls(SendMessageBatchCommand)).toHaveLength(1);
    const body = JSON.parse(sqsMock.commandCalls(SendMessageBatchCommand)[0]!.args[0].input.Entries![0]!.MessageBody!);
    expect(body).toMatchObject({ orgId: "o1", jobId: "j1", deliveryId: "whd_j1_completed" });

    // Replayed record: the delivery exists and was attempted already → nothing sent.
    ddb.on(UpdateCommand).rejects(new ConditionalCheckFailedException({ message: "exists", $metadata: {} }));
    ddb.on(GetCommand).resolves({ Item: { webhook: { id: "whd_j1_completed", status: "pending", attempts: 1 } } });
    await finalizeJobs([ended("2")]);
    expect(sqsMock.commandCalls(SendMessageBatchCommand)).toHaveLength(1);
    // Recorded but never attempted (the first writer may have stopped before sending) → sent.
    ddb.on(GetCommand).resolves({ Item: { webhook: { id: "whd_j1_completed", status: "pending", attempts: 0 } } });
    await finalizeJobs([ended("3")]);
    expect(sqsMock.commandCalls(SendMessageBatchCommand)).toHaveLength(2);
  });

  it("reports the failing record so the stream resumes from it", async () => {
    ddb.on(UpdateCommand).rejects(new Error("throttled"));
    const response = await finalizeJobs([
      record(job({ completedItems: 1 }), "1"),
      record(job({ completedItems: 4 }), "2"),
    ]);
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: "2" }]);
  });
});
