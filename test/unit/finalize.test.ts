import { ConditionalCheckFailedException } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import type { DynamoDBRecord } from "aws-lambda";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { finalizeJobs, finishedStatus } from "../../shared/pipeline/finalize.ts";

const ddb = mockClient(DynamoDBDocumentClient);
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
  beforeEach(() => ddb.reset());

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

  it("reports the failing record so the stream resumes from it", async () => {
    ddb.on(UpdateCommand).rejects(new Error("throttled"));
    const response = await finalizeJobs([
      record(job({ completedItems: 1 }), "1"),
      record(job({ completedItems: 4 }), "2"),
    ]);
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: "2" }]);
  });
});
