/** Billed attempts under a transaction conflict on the job item (the recorder updates it at the same time). */
import { TransactionCanceledException } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient, TransactWriteCommand } from "@aws-sdk/lib-dynamodb";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { addBilledAttempts } from "../../shared/store/billed-attempts.ts";

const ddb = mockClient(DynamoDBDocumentClient);
const attempt = {
  attemptId: "m1#1",
  usage: {
    inputTokens: 1000,
    outputTokens: 100,
    cacheCreationInputTokens: 0,
    cacheReadInputTokens: 0,
    thinkingTokens: 0,
  },
  estimatedCostUsd: 0.01,
};
const conflict = () =>
  new TransactionCanceledException({
    message: "Transaction cancelled",
    $metadata: {},
    CancellationReasons: [{ Code: "TransactionConflict" }, { Code: "None" }, { Code: "None" }],
  });

describe("addBilledAttempts", () => {
  beforeEach(() => ddb.reset());

  it("writes again after a transaction conflict, so the billed usage is not lost", async () => {
    ddb.on(TransactWriteCommand).rejectsOnce(conflict()).resolves({});
    await addBilledAttempts("o1", "j1", [attempt]);
    expect(ddb.commandCalls(TransactWriteCommand)).toHaveLength(2);
  });
});
