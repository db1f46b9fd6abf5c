/** An Idempotency-Key's request whose answer cannot be stored: the change is made, so the client gets its answer. */
import { DynamoDBDocumentClient, PutCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { respondIdempotently } from "../../shared/http/idempotency.ts";

const ddb = mockClient(DynamoDBDocumentClient);
const request = { orgId: "o1", key: "k1", operationId: "createCall", path: {}, body: { a: 1 }, context: undefined };
const created = { statusCode: 201, body: '{"data":{"id":"c1"}}' };
const unavailable = () => Object.assign(new Error("Service unavailable"), { name: "InternalServerError" });

describe("respondIdempotently when storing the answer fails", () => {
  beforeEach(() => {
    ddb.reset();
    ddb.on(PutCommand).resolves({});
  });

  it("tries storing the answer again", async () => {
    ddb.on(UpdateCommand).rejectsOnce(unavailable()).resolves({});
    let runs = 0;
    const response = await respondIdempotently(request as never, async () => {
      runs++;
      return created;
    });
    expect(response).toEqual(created);
    expect(runs).toBe(1);
    expect(ddb.commandCalls(UpdateCommand)).toHaveLength(2);
    expect(ddb.commandCalls(UpdateCommand)[1]?.args[0].input.ExpressionAttributeValues?.[":completed"]).toBe(
      "COMPLETED",
    );
  });

  it("answers what was created even when the answer cannot be stored at all", async () => {
    ddb.on(UpdateCommand).rejects(unavailable());
    const response = await respondIdempotently(request as never, async () => created);
    expect(response).toEqual(created);
  });
});
