import { DynamoDBDocumentClient, GetCommand, QueryCommand } from "@aws-sdk/lib-dynamodb";
import { mockClient } from "aws-sdk-client-mock";
import { expect, it } from "vitest";
import { retryFailedItems } from "../../shared/pipeline/retry-job.ts";

const ddb = mockClient(DynamoDBDocumentClient);

it("reads the finished job and its failed items consistently: concurrent retries must agree on them", async () => {
  ddb.on(GetCommand).resolves({ Item: { entity: "Job", id: "j1", status: "COMPLETED", metrics: [] } });
  ddb.on(QueryCommand).resolves({ Items: [] });
  await expect(retryFailedItems("o1", "j1")).rejects.toThrow(/no failed items/);
  expect(ddb.commandCalls(GetCommand).map((call) => call.args[0].input.ConsistentRead)).toEqual([true]);
  expect(ddb.commandCalls(QueryCommand).map((call) => call.args[0].input.ConsistentRead)).toEqual([true]);
});
