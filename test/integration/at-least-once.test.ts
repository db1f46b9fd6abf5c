/**
 * At-least-once delivery: duplicates, crashes mid-batch, transient failures and poison
 * items must neither lose nor double-count an item.
 */
import type { Context, SQSEvent } from "aws-lambda";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createHandler } from "../../functions/workers/evaluator.ts";
import { defaultEvaluatorDeps } from "../../shared/pipeline/evaluate.ts";
import { type EvaluateItem, evaluateByCalculationType } from "../../shared/pipeline/evaluators.ts";
import { createCalls, createMetrics, jobValues, standardMetrics } from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitFor, waitForJobEnd } from "../support/stack.ts";

type SqsHandler = (event: SQSEvent) => Promise<unknown>;

// One stack per file (config is per process); each test swaps the behaviour it needs.
let stack: TestStack;
let evaluate: EvaluateItem = evaluateByCalculationType;
let evaluator: SqsHandler;
let dispatcher: SqsHandler;
const realDispatcher = (await import("../../functions/workers/dispatcher.ts")).handler;
const realEvaluator = createHandler({
  ...defaultEvaluatorDeps,
  evaluate: (definition, call) => evaluate(definition, call),
});

beforeAll(async () => {
  stack = await startTestStack({
    runtime: {
      handlerOverrides: {
        evaluator: (event: SQSEvent) => evaluator(event),
        dispatcher: (event: SQSEvent) => dispatcher(event),
      },
    },
  });
});
afterAll(() => stack?.stop());
beforeEach(() => {
  evaluate = evaluateByCalculationType;
  evaluator = realEvaluator;
  dispatcher = realDispatcher;
});

let run = 0;
async function runJob(s: TestStack, calls: number, metrics: { slug: string }[] = standardMetrics) {
  run++;
  const callIds = await createCalls(s.api, calls);
  // Slugs are unique per organization: each job gets its own definitions.
  const created = await createMetrics(
    s.api,
    metrics.map((metric) => ({ ...metric, slug: `${metric.slug}-${run}` })),
  );
  const response = await s.api("POST", "/v1/metric/collection-jobs", {
    callIds,
    metrics: created.map((m) => ({ id: m.id })),
  });
  expect(response.status).toBe(201);
  return { job: await waitForJobEnd(s.api, response.body.data.id), callIds };
}

/** Job counters must equal what its stored values say, item by item. */
async function expectCountsMatchValues(s: TestStack, job: any) {
  const values = await jobValues(s.api, job.id);
  const keys = values.map((v) => `${v.callId}|${v.metricDefinitionId}`);
  expect(new Set(keys).size).toBe(values.length);
  expect(values).toHaveLength(job.totalItems);
  expect(job.completedItems).toBe(values.filter((v) => v.captureStatus !== "ERROR").length);
  expect(job.failedItems).toBe(values.filter((v) => v.captureStatus === "ERROR").length);
  return values;
}

describe("at-least-once delivery", () => {
  it("counts once when the fan-out sends every item message twice", async () => {
    // Two concurrent dispatches of each page: every work message is in the queue twice.
    dispatcher = async (event) => {
      const [first] = await Promise.all([realDispatcher(event), realDispatcher(event)]);
      return first;
    };
    const messagesBefore = stack.stats().queues.work!.messages;
    const { job } = await runJob(stack, 5);
    expect(job).toMatchObject({ status: "COMPLETED", totalItems: 15, completedItems: 15, failedItems: 0 });
    await expectCountsMatchValues(stack, job);
    await waitFor(async () => (stack.stats().queues.work!.messages - messagesBefore >= 30 ? true : undefined), {
      what: "both copies of every item to be delivered",
    });
  });

  it("retries items whose evaluation throws mid-batch and counts each exactly once", async () => {
    const failedOnce = new Set<string>();
    // Every second item of a batch fails on its first attempt.
    let calls = 0;
    evaluate = async (definition, call) => {
      const key = `${call.id}|${definition.id}`;
      if (!failedOnce.has(key) && calls++ % 2 === 0) {
        failedOnce.add(key);
        throw new Error("transient failure");
      }
      return evaluateByCalculationType(definition, call);
    };
    const { job } = await runJob(stack, 10);
    expect(failedOnce.size).toBeGreaterThan(5);
    expect(job).toMatchObject({ status: "COMPLETED", completedItems: 30, failedItems: 0 });
    await expectCountsMatchValues(stack, job);
  });

  it("survives a worker that crashes after recording part of its batch", async () => {
    let crashes = 0;
    evaluator = async (event) => {
      // Record the first half of the batch, then die before answering: the whole batch is redelivered.
      // Only batches received for the first time crash, so no message reaches the test queue's
      // third and last receive through crashes alone (it would go to the dead-letter queue).
      const firstReceive = event.Records.every((record) => record.attributes.ApproximateReceiveCount === "1");
      if (crashes < 5 && event.Records.length > 1 && firstReceive) {
        crashes++;
        await realEvaluator({ Records: event.Records.slice(0, Math.ceil(event.Records.length / 2)) });
        throw new Error("worker crashed");
      }
      return realEvaluator(event);
    };
    const { job } = await runJob(stack, 10);
    expect(crashes).toBeGreaterThan(0);
    expect(job).toMatchObject({ status: "COMPLETED", completedItems: 30, failedItems: 0 });
    await expectCountsMatchValues(stack, job);
  });

  it("records a poison item as ERROR on its last attempt so the job still finishes", async () => {
    let poisonAttempts = 0;
    evaluate = async (definition, call) => {
      if (definition.slug.startsWith("turn-count") && call.transcript[2]?.text.includes("call 3.")) {
        poisonAttempts++;
        throw new Error("metric exploded");
      }
      return evaluateByCalculationType(definition, call);
    };
    const { job } = await runJob(stack, 5);
    expect(job).toMatchObject({ status: "COMPLETED", totalItems: 15, completedItems: 14, failedItems: 1 });
    // maxReceiveCount is 3 in tests: two retries, then ERROR on the third.
    expect(poisonAttempts).toBe(3);
    const values = await expectCountsMatchValues(stack, job);
    const error = values.find((v) => v.captureStatus === "ERROR");
    expect(error.errorMessage).toBe("Gave up after 3 attempts: metric exploded");
  });

  it("hands a batch back instead of starting an item it has no time left to finish", async () => {
    let shortOnTime = 2;
    const evaluated: string[] = [];
    evaluate = async (definition, call) => {
      evaluated.push(`${call.id}|${definition.id}`);
      return evaluateByCalculationType(definition, call);
    };
    // The first two invocations report 5 s left, less than one LLM call may take.
    evaluator = (event) =>
      realEvaluator(event, {
        getRemainingTimeInMillis: () => (shortOnTime-- > 0 ? 5_000 : 120_000),
      } as unknown as Context);
    const { job } = await runJob(stack, 3);
    expect(job).toMatchObject({ status: "COMPLETED", completedItems: 9, failedItems: 0 });
    await expectCountsMatchValues(stack, job);
    // Nothing was evaluated by the invocations that were short on time.
    expect(new Set(evaluated).size).toBe(9);
    expect(evaluated).toHaveLength(9);
  });

  it("retries exactly the failed items of a finished job in a new job", async () => {
    // Calls 0 and 2 fail on the turn-count metric until the retry.
    let failing = true;
    evaluate = async (definition, call) => {
      if (failing && definition.slug.startsWith("turn-count") && /call [02]\./.test(JSON.stringify(call.transcript))) {
        throw new Error("flaky judge");
      }
      return evaluateByCalculationType(definition, call);
    };
    const { job, callIds } = await runJob(stack, 3);
    expect(job).toMatchObject({ status: "COMPLETED", completedItems: 7, failedItems: 2 });

    failing = false;
    const retried = await stack.api("POST", `/v1/metric/collection-jobs/${job.id}/retry`);
    expect(retried.status).toBe(201);
    expect(retried.body.data).toMatchObject({
      triggeredBy: "RETRY",
      totalItems: 2,
      callCount: 2,
      metadata: { retryOf: job.id },
      metrics: [expect.objectContaining({ slug: expect.stringMatching(/^turn-count/) })],
    });
    const retryJob = await waitForJobEnd(stack.api, retried.body.data.id);
    expect(retryJob).toMatchObject({ status: "COMPLETED", completedItems: 2, failedItems: 0 });
    const values = await expectCountsMatchValues(stack, retryJob);
    expect(values.map((v) => v.callId).sort()).toEqual([callIds[0], callIds[2]].sort());

    // Nothing failed in the retry: nothing to retry; unknown jobs 404.
    const again = await stack.api("POST", `/v1/metric/collection-jobs/${retryJob.id}/retry`);
    expect(again.status).toBe(400);
    expect(again.body.error.message).toMatch(/no failed items/);
    expect((await stack.api("POST", "/v1/metric/collection-jobs/nope/retry")).status).toBe(404);
  });

  it("refuses to retry a job that is still running (409)", async () => {
    evaluate = async (definition, call) => {
      await new Promise((resolve) => setTimeout(resolve, 300));
      return evaluateByCalculationType(definition, call);
    };
    const callIds = await createCalls(stack.api, 3);
    const [metric] = await createMetrics(stack.api, [{ ...standardMetrics[0], slug: "retry-running" }]);
    const created = await stack.api("POST", "/v1/metric/collection-jobs", { callIds, metrics: [{ id: metric!.id }] });
    const running = await stack.api("POST", `/v1/metric/collection-jobs/${created.body.data.id}/retry`);
    expect(running.status).toBe(409);
    await waitForJobEnd(stack.api, created.body.data.id);
  });

  it("marks a job FAILED when every item fails", async () => {
    evaluate = async () => {
      throw new Error("down");
    };
    const { job } = await runJob(stack, 2, standardMetrics.slice(0, 1));
    expect(job).toMatchObject({
      status: "FAILED",
      completedItems: 0,
      failedItems: 2,
      errorMessage: "All 2 items failed",
    });
  });

  it("sends malformed work messages to the DLQ without touching any job", async () => {
    const { SQSClient, SendMessageCommand, ReceiveMessageCommand } = await import("@aws-sdk/client-sqs");
    const sqs = new SQSClient({ endpoint: process.env.SQS_ENDPOINT, region: "us-east-1" });
    await sqs.send(new SendMessageCommand({ QueueUrl: stack.queueUrls.work, MessageBody: "{not json" }));
    // The DLQ may also hold a copy of an earlier test's poison item (received once more
    // after its last attempt when the 2 s test visibility ran out): look among all of them.
    const dead = await waitFor(
      async () => {
        const { Messages } = await sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: stack.queues.work.dlqUrl,
            WaitTimeSeconds: 1,
            MaxNumberOfMessages: 10,
            VisibilityTimeout: 0,
          }),
        );
        return Messages?.find((message) => message.Body === "{not json");
      },
      { timeoutMs: 30_000, what: "the malformed message in the DLQ" },
    );
    expect(dead.Body).toBe("{not json");
  });
});
