/**
 * Logs that answer questions: every entry point puts the Lambda context on its lines, and
 * every line names the organization and job it is about — per message within a batch, per
 * request on the API (with API Gateway's request id), the unhandled error's line included.
 */
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { mockClient } from "aws-sdk-client-mock";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { z } from "zod";
import { eachMessage, sqsBatch } from "../../shared/consumers.ts";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { logger } from "../../shared/logger.ts";
import { wiring } from "../../shared/wiring.ts";
import { authorizedRequest, lambdaContext, sqsEvent } from "../support/lambda.ts";

// The logger takes its level once, when first imported (an invocation restores it after any
// change), and the tests run silent: this file's imports run at INFO.
vi.hoisted(() => {
  process.env.LOG_LEVEL = "INFO";
});

type Line = Record<string, unknown>;
let lines: Line[];

beforeEach(() => {
  lines = [];
  // The logger writes JSON lines to stdout (stderr for warnings and errors).
  for (const stream of [process.stdout, process.stderr]) {
    vi.spyOn(stream, "write").mockImplementation((chunk: string | Uint8Array) => {
      for (const text of String(chunk).split("\n").filter(Boolean)) lines.push(JSON.parse(text) as Line);
      return true;
    });
  }
});
afterEach(() => vi.restoreAllMocks());

const message = (messageId: string, body: object) => ({
  messageId,
  body: JSON.stringify(body),
  receiptHandle: `r-${messageId}`,
  attributes: { ApproximateReceiveCount: "1" } as never,
});

describe("log lines", () => {
  it("name each message's own organization and job, interleaved in one batch, next to the Lambda context", async () => {
    const schema = z.object({ orgId: z.string(), jobId: z.string(), delayMs: z.number() });
    const handler = sqsBatch(schema, async (messages) => {
      logger.info("batch received", { messages: messages.length });
      return eachMessage<z.infer<typeof schema>>(
        async ({ body }) => {
          logger.info("started");
          await new Promise((resolve) => setTimeout(resolve, body.delayMs));
          logger.info("finished");
        },
        { concurrency: 2, failure: "failed" },
      )(messages);
    });
    await handler(
      sqsEvent([
        message("a", { orgId: "org-1", jobId: "job-slow", delayMs: 30 }),
        message("b", { orgId: "org-1", jobId: "job-fast", delayMs: 1 }),
      ]),
      lambdaContext("evaluator"),
    );
    const messageLines = lines.filter((line) => line.message === "started" || line.message === "finished");
    // Interleaved: the fast message finished while the slow one was still waiting.
    expect(messageLines.map((line) => `${line.message} ${line.jobId}`)).toEqual([
      "started job-slow",
      "started job-fast",
      "finished job-fast",
      "finished job-slow",
    ]);
    for (const line of lines) {
      expect(line).toMatchObject({ orgId: "org-1", function_name: "evaluator", cold_start: expect.any(Boolean) });
      expect(line.function_request_id).toEqual(expect.any(String));
    }
    // The batch's own line names what all its messages share: the organization, not a job.
    expect(lines.find((line) => line.message === "batch received")).not.toHaveProperty("jobId");
  });

  it("name the request's organization and API Gateway's request id, on the unhandled error's line too", async () => {
    const route = apiRoute({ roles: ["member"] }, async () => {
      logger.info("looking things up");
      throw new Error("the table is gone");
    });
    // The API rate's check reads and writes the table before the handler runs.
    const table = mockClient(DynamoDBDocumentClient);
    table.onAnyCommand().resolves({});
    const response = await route(authorizedRequest("org-7", "apigw-request-1"), lambdaContext("api-list-calls"));
    table.restore();
    expect(response).toMatchObject({ statusCode: 500 });
    expect(lines.map((line) => line.message)).toEqual(["looking things up", "Unhandled error"]);
    for (const line of lines) {
      expect(line).toMatchObject({
        orgId: "org-7",
        correlation_id: "apigw-request-1",
        function_name: "api-list-calls",
      });
    }
  });

  it("carry the Lambda context from every function the wiring deploys", async () => {
    const entries = [
      wiring.authorizer,
      ...wiring.routes,
      ...wiring.queueConsumers,
      ...wiring.streamConsumers,
      ...wiring.schedules,
    ];
    const bare: string[] = [];
    for (const entry of [...new Map(entries.map((e) => [e.entry, e])).values()]) {
      const { handler } = (await import(`../../${entry.entry}`)) as { handler: { use?: unknown } };
      // Every wrapper (apiRoute, sqsBatch, streamBatch, withLambdaContext) is a middy handler
      // that injects the Lambda context: a bare function would log without it.
      if (typeof handler.use !== "function") bare.push(entry.entry);
    }
    expect(bare).toEqual([]);
  });
});
