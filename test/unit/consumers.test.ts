/** The two consumer shapes: parsing, malformed messages, partial batch answers, context on logs. */
import type { DynamoDBRecord } from "aws-lambda";
import { afterEach, describe, expect, it, vi } from "vitest";
import { z } from "zod";
import { eachMessage, type QueueMessage, sqsBatch, streamBatch } from "../../shared/consumers.ts";
import { logger } from "../../shared/logger.ts";
import { lambdaContext, sqsEvent } from "../support/lambda.ts";

const schema = z.object({ n: z.number() });
const record = (messageId: string, body: string, receiveCount = "1") => ({
  messageId,
  body,
  receiptHandle: `r-${messageId}`,
  attributes: { ApproximateReceiveCount: receiveCount } as never,
});

describe("sqsBatch", () => {
  afterEach(() => vi.restoreAllMocks());

  it("hands parsed messages to the domain and answers what it and the parser leave for redelivery", async () => {
    const seen: QueueMessage<{ n: number }>[] = [];
    const handler = sqsBatch(schema, async (messages) => {
      seen.push(...messages);
      return ["b"];
    });
    const response = await handler(
      sqsEvent([
        record("a", '{"n":1}', "3"),
        record("b", '{"n":2}'),
        record("c", "{not json"),
        record("d", '{"n":"x"}'),
      ]),
      lambdaContext(),
    );
    expect(seen.map((message) => [message.record.messageId, message.body.n, message.receiveCount])).toEqual([
      ["a", 1, 3],
      ["b", 2, 1],
    ]);
    expect(response.batchItemFailures.map((failure) => failure.itemIdentifier).sort()).toEqual(["b", "c", "d"]);
  });

  it("drops malformed messages when told to, counting them", async () => {
    const counted: number[] = [];
    const handle = vi.fn(async () => []);
    const handler = sqsBatch(schema, handle, { malformed: "drop", onMalformed: (count) => counted.push(count) });
    const response = await handler(sqsEvent([record("c", "{not json"), record("d", "[]")]), lambdaContext());
    expect(response.batchItemFailures).toEqual([]);
    expect(counted).toEqual([2]);
    expect(handle).not.toHaveBeenCalled();
  });

  it("gives the logger the Lambda context before the domain code runs", async () => {
    const addContext = vi.spyOn(logger, "addContext");
    const context = lambdaContext("evaluator");
    let givenBeforeHandling = false;
    await sqsBatch(schema, async () => {
      givenBeforeHandling = addContext.mock.calls.some(([given]) => given.awsRequestId === context.awsRequestId);
      return [];
    })(sqsEvent([record("a", '{"n":1}')]), context);
    expect(givenBeforeHandling).toBe(true);
  });
});

describe("eachMessage", () => {
  it("redelivers exactly the messages whose handling threw or asked to retry, handling a few at once", async () => {
    let inFlight = 0;
    let most = 0;
    const handle = eachMessage<{ n: number }>(
      async ({ body }) => {
        most = Math.max(most, ++inFlight);
        await new Promise((resolve) => setTimeout(resolve, 5));
        inFlight--;
        if (body.n === 2) throw new Error("transient");
        return body.n === 3 ? "retry" : "done";
      },
      { concurrency: 2, failure: "failed" },
    );
    const messages = [1, 2, 3, 4].map((n) => ({ record: record(`m${n}`, "") as never, body: { n }, receiveCount: 1 }));
    expect([...(await handle(messages))]).toEqual(["m2", "m3"]);
    expect(most).toBe(2);
  });
});

describe("streamBatch", () => {
  it("hands the records to the domain and answers its failures", async () => {
    const records = [{ eventID: "1" }, { eventID: "2" }] as DynamoDBRecord[];
    const handler = streamBatch(async (received) => ({
      batchItemFailures: received.slice(1).map((r) => ({ itemIdentifier: String(r.eventID) })),
    }));
    expect(await handler({ Records: records }, lambdaContext())).toEqual({
      batchItemFailures: [{ itemIdentifier: "2" }],
    });
  });
});
