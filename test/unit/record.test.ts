import { TransactionCanceledException } from "@aws-sdk/client-dynamodb";
import { BatchWriteCommand, DynamoDBDocumentClient, GetCommand, TransactWriteCommand } from "@aws-sdk/lib-dynamodb";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { toDelta } from "../../shared/analytics/deltas.ts";
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
  beforeEach(() => {
    ddb.reset();
    // The organization's settings (its retention period): none.
    ddb.on(GetCommand).resolves({});
  });

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
    // The ids are in the keys; repeating them would push most values over 1 KB.
    for (const attribute of ["orgId", "jobId", "callId", "metricDefinitionId"]) {
      expect(items[1]!.Put!.Item).not.toHaveProperty(attribute);
    }
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

  it("splits a job's values into sequential transactions that leave room for the rollup delta", async () => {
    ddb.on(TransactWriteCommand).resolves({});
    await recordResults(Array.from({ length: 150 }, (_, i) => result(`c${i}`)));
    const sizes = ddb.commandCalls(TransactWriteCommand).map((c) => c.args[0].input.TransactItems!.length);
    // At most 24 values + 1 counter per transaction (these values have no rollups, so no
    // delta): a delta of 24 values is at most 96 rollup updates, which the applier can still
    // apply at once. The values are spread evenly: seven transactions of 22 or 18.
    expect(sizes).toEqual([23, 23, 23, 23, 23, 23, 19]);
    ddb.resetHistory();
    // An evaluator's batch of 40 of one job: two transactions of 20, not 24 and 16.
    await recordResults(Array.from({ length: 40 }, (_, i) => result(`d${i}`)));
    expect(ddb.commandCalls(TransactWriteCommand).map((c) => c.args[0].input.TransactItems!.length)).toEqual([21, 21]);
  });

  it("puts one rollup delta with what the transaction's values add, instead of updating rollups", async () => {
    ddb.on(TransactWriteCommand).resolves({});
    ddb.on(BatchWriteCommand).resolves({}); // the analytics index of label sets
    const withRollup = (callId: string, at: string): ItemResult => ({
      ...result(callId),
      rollup: {
        orgId: "o1",
        slug: "duration",
        outputType: "NUMERIC",
        histogram: false,
        labels: { agentId: "a1" },
        at,
        numeric: 7,
      },
    });
    await recordResults([withRollup("c1", "2026-11-24T10:00:00.000Z"), withRollup("c2", "2026-11-25T10:00:00.000Z")]);
    const actions = ddb.commandCalls(TransactWriteCommand)[0]!.args[0].input.TransactItems!;
    // The counter, two values and the delta; no rollup item is touched in this transaction.
    expect(actions).toHaveLength(4);
    expect(actions.filter((action) => JSON.stringify(action).includes("#ROLLUP#"))).toEqual([]);
    const delta = actions[3]!.Put!.Item!;
    expect(delta).toMatchObject({ entity: "RollupDelta", orgId: "o1", sk: "DELTA" });
    expect(delta.pk).toMatch(/^ORG#o1#ROLLUPDELTA#[0-9a-f]{32}$/);
    // Stored grouped by call (label set id and time once per call), read back one input per
    // value. The id is the first 16 hex digits of sha256('[["agentId","a1"]]').
    const labelSet = "be24ffd894471012";
    expect(delta.calls).toEqual([
      { labelSet, at: "2026-11-24T10:00:00.000Z", values: [{ slug: "duration", numeric: 7 }] },
      { labelSet, at: "2026-11-25T10:00:00.000Z", values: [{ slug: "duration", numeric: 7 }] },
    ]);
    expect(toDelta(delta).inputs).toEqual([
      { slug: "duration", histogram: false, labelSet, at: "2026-11-24T10:00:00.000Z", numeric: 7 },
      { slug: "duration", histogram: false, labelSet, at: "2026-11-25T10:00:00.000Z", numeric: 7 },
    ]);
    // A delta written with the labels themselves reads back with their label set's id.
    const written = {
      ...delta,
      calls: [{ labels: { agentId: "a1" }, at: "2026-11-24T10:00:00.000Z", values: [{ slug: "duration" }] }],
    };
    expect(toDelta(written).inputs).toEqual([
      { slug: "duration", histogram: false, labelSet, at: "2026-11-24T10:00:00.000Z" },
    ]);
    expect(actions[3]!.Put!.ConditionExpression).toBeUndefined();
  });
});
