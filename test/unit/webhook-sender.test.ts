import { DynamoDBDocumentClient, GetCommand } from "@aws-sdk/lib-dynamodb";
import type { SQSRecord } from "aws-lambda";
import { mockClient } from "aws-sdk-client-mock";
import { expect, it } from "vitest";
import { keys } from "../../shared/keys.ts";
import { sendWebhookBatch } from "../support/lambda.ts";

const ddb = mockClient(DynamoDBDocumentClient);

it("reads the job it announces consistently: the status it reached a moment ago must be in the event", async () => {
  ddb.on(GetCommand).resolves({});
  const message = { orgId: "o1", jobId: "j1", deliveryId: "whd_j1_completed", queuedAt: new Date().toISOString() };
  const record = { messageId: "m1", receiptHandle: "r1", body: JSON.stringify(message) } as SQSRecord;
  const fail = () => Promise.reject(new Error("not expected"));
  await sendWebhookBatch([record], { fetch: fail, delay: fail, now: () => new Date() });
  const jobReads = ddb
    .commandCalls(GetCommand)
    .filter((call) => JSON.stringify(call.args[0].input.Key) === JSON.stringify(keys.job("o1", "j1")));
  expect(jobReads).toHaveLength(1);
  expect(jobReads[0]!.args[0].input.ConsistentRead).toBe(true);
});
