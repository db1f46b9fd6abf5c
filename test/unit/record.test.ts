import { TransactionCanceledException } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient, TransactWriteCommand } from "@aws-sdk/lib-dynamodb";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { type ItemResult, recordResults } from "../../shared/pipeline/record.ts";

const ddb = mockClient(DynamoDBDocumentClient);

function result(callId: string, messageId = `m-${callId}`, captureStatus: "SUCCESS" | "ERROR" = "SUCCESS"): ItemResult {
  const item = { orgId: "o1", jobId: "j1", callId, metricId: "m1", metricVersion: 1 };
  return {
    messageId,
    item,
    value: {
      jobId: "j1",
      callId,
      metricDefinitionId: "m1",
      metricVersion: 1,
      captureStatus,
      computedAt: "2026-11-24T00:00:00.000Z",
      context: "CALL",
      value: 1,
    },
  };
}

const canceled = (codes: string[]) =>
  new TransactionCanceledException({
    message: "Transaction cancelled",
    $metadata: {},
    CancellationReasons: codes.map((Code) => ({ Code })),
  });

describe("recordResults (exactly-once counting)", () => {
  beforeEach(() => ddb.reset());

  it("writes the values of one job and one counter increment in a single transaction", async () => {
    ddb.on(TransactWriteCommand).resolves({});
    const outcomes = await recordResults([result("c1"), result("c2"), result("c3", "m-c3", "ERROR")]);
    expect([...outcomes.values()]).toEqual(["recorded", "recorded", "recorded"]);
    const calls = ddb.commandCalls(TransactWriteCommand);
    expect(calls).toHaveLength(1);
    const items = calls[0]!.args[0].input.TransactItems!;
    expect(items).toHaveLength(4);
    expect(items[0]!.Update!.ExpressionAttributeValues).toMatchObject({ ":completed": 2, ":failed": 1 });
    expect(items[0]!.Update!.ConditionExpression).toBe("#status IN (:pending, :processing)");
    expect(items[1]!.Put!.ConditionExpression).toBe("attribute_not_exists(pk)");
    expect(items[1]!.Put!.Item).toMatchObject({
      pk: "ORG#o1#JOB#j1",
      sk: "ITEM#c1#m1",
      gsi1pk: "ORG#o1#CALL#c1#VALUES",
    });
  });

  it("drops already-recorded items and counts only the new ones on retry", async () => {
    ddb
      .on(TransactWriteCommand)
      .rejectsOnce(canceled(["None", "ConditionalCheckFailed", "None"]))
      .resolves({});
    const outcomes = await recordResults([result("c1"), result("c2")]);
    expect(outcomes.get("m-c1")).toBe("duplicate");
    expect(outcomes.get("m-c2")).toBe("recorded");
    const retry = ddb.commandCalls(TransactWriteCommand)[1]!.args[0].input.TransactItems!;
    expect(retry).toHaveLength(2);
    expect(retry[0]!.Update!.ExpressionAttributeValues).toMatchObject({ ":completed": 1, ":failed": 0 });
  });

  it("records nothing for a job that is no longer running", async () => {
    ddb.on(TransactWriteCommand).rejects(canceled(["ConditionalCheckFailed", "None"]));
    const outcomes = await recordResults([result("c1")]);
    expect(outcomes.get("m-c1")).toBe("job-not-running");
    expect(ddb.commandCalls(TransactWriteCommand)).toHaveLength(1);
  });

  it("retries transaction conflicts and leaves items for redelivery when they persist", async () => {
    ddb.on(TransactWriteCommand).rejects(canceled(["TransactionConflict", "None"]));
    const outcomes = await recordResults([result("c1")]);
    expect(outcomes.get("m-c1")).toBe("not-recorded");
    expect(ddb.commandCalls(TransactWriteCommand).length).toBeGreaterThan(1);
  });

  it("writes an item delivered twice in one batch once and reports the copy as a duplicate", async () => {
    ddb.on(TransactWriteCommand).resolves({});
    const outcomes = await recordResults([result("c1", "first"), result("c1", "second")]);
    expect(outcomes.get("first")).toBe("recorded");
    expect(outcomes.get("second")).toBe("duplicate");
    expect(ddb.commandCalls(TransactWriteCommand)[0]!.args[0].input.TransactItems).toHaveLength(2);
  });

  it("splits a job's values into sequential transactions that leave room for the rollups", async () => {
    ddb.on(TransactWriteCommand).resolves({});
    await recordResults(Array.from({ length: 150 }, (_, i) => result(`c${i}`)));
    const sizes = ddb.commandCalls(TransactWriteCommand).map((c) => c.args[0].input.TransactItems!.length);
    // 19 values + 1 counter per transaction (up to 4 rollups per value fit in the rest).
    expect(sizes).toEqual([20, 20, 20, 20, 20, 20, 20, 18]);
  });
});
