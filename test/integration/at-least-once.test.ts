/**
 * At-least-once delivery: duplicates, crashes mid-batch, transient failures and poison
 * items must neither lose nor double-count an item.
 */
import type { Context, SQSEvent } from "aws-lambda";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createHandler } from "../../functions/workers/evaluator.ts";
import type { SqsConsumerStats } from "../../infra/local/sqs-poller.ts";
import { defaultEvaluatorDeps } from "../../shared/pipeline/evaluate.ts";
import { type EvaluateItem, evaluateByCalculationType } from "../../shared/pipeline/evaluators.ts";
import {
  createCalls,
  createJob,
  createMetrics,
  expectCountsMatchValues,
  standardMetrics,
} from "../support/fixtures.ts";
import { crashTestQueues, startTestStack, type TestStack, waitFor, waitForJobEnd } from "../support/stack.ts";

type SqsHandler = (event: SQSEvent, context: Context) => Promise<unknown>;

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
    queueOverrides: crashTestQueues,
    runtime: {
      handlerOverrides: {
        evaluator: (event: SQSEvent, context: Context) => evaluator(event, context),
        dispatcher: (event: SQSEvent, context: Context) => dispatcher(event, context),
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
  // Slugs are unique per organization: each job gets its own definitions.
  const { jobId, callIds } = await createJob(s.api, calls, metrics, String(run));
  return { job: await waitForJobEnd(s.api, jobId), callIds };
}

describe("at-least-once delivery", () => {
  it("counts once when the fan-out sends every item message twice", async () => {
    // Two concurrent dispatches of each page: every work message is in the queue twice.
    dispatcher = async (event, context) => {
      const [first] = await Promise.all([realDispatcher(event, context), realDispatcher(event, context)]);
      return first;
    };
    const messagesBefore = stack.stats().queues.work!.messages;
    const { job } = await runJob(stack, 5);
    expect(job).toMatchObject({ status: "COMPLETED", totalItems: 15, completedItems: 15, failedItems: 0 });
    await expectCountsMatchValues(stack.api, job);
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
    await expectCountsMatchValues(stack.api, job);
  });

  it("survives a worker that crashes after recording part of its batch", async () => {
    let crashes = 0;
    evaluator = async (event, context) => {
      // Record the first half of the batch, then die before answering: the whole batch is redelivered.
      // Only batches received for the first time crash, so no message reaches the test queue's
      // third and last receive through crashes alone (it would go to the dead-letter queue).
      const firstReceive = event.Records.every((record) => record.attributes.ApproximateReceiveCount === "1");
      if (crashes < 5 && event.Records.length > 1 && firstReceive) {
        crashes++;
        await realEvaluator({ Records: event.Records.slice(0, Math.ceil(event.Records.length / 2)) }, context);
        throw new Error("worker crashed");
      }
      return realEvaluator(event, context);
    };
    const { job } = await runJob(stack, 10);
    expect(crashes).toBeGreaterThan(0);
    expect(job).toMatchObject({ status: "COMPLETED", completedItems: 30, failedItems: 0 });
    await expectCountsMatchValues(stack.api, job);
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
    const values = await expectCountsMatchValues(stack.api, job);
    const error = values.find((v) => v.captureStatus === "ERROR");
    expect(error.errorMessage).toBe("Gave up after 3 attempts: metric exploded");
  });

  it("hands the rest of a batch back when time runs out, spending none of the items' attempts", async () => {
    const evaluated: string[] = [];
    evaluate = async (definition, call) => {
      evaluated.push(`${call.id}|${definition.id}`);
      return evaluateByCalculationType(definition, call);
    };
    // Every invocation reports 5 s left, less than one LLM call may take: it runs its first
    // item and hands the others back, again and again, far more often than the 3 receives
    // the test queue allows before dead-lettering.
    let invocations = 0;
    evaluator = (event, context) => {
      invocations++;
      return realEvaluator(event, { ...context, getRemainingTimeInMillis: () => 5_000 });
    };
    const received = stack.stats().queues.work!.messages;
    const { job } = await runJob(stack, 6);
    expect(job).toMatchObject({ status: "COMPLETED", totalItems: 18, completedItems: 18, failedItems: 0 });
    await expectCountsMatchValues(stack.api, job);
    // Each item was judged once, and the hand-backs really happened: every invocation
    // judged one item, and the queue delivered the items more often than there are items.
    expect(new Set(evaluated).size).toBe(18);
    expect(evaluated).toHaveLength(18);
    expect(invocations).toBe(18);
    expect(stack.stats().queues.work!.messages - received).toBeGreaterThan(18);
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
    const values = await expectCountsMatchValues(stack.api, retryJob);
    expect(values.map((v) => v.callId).sort()).toEqual([callIds[0], callIds[2]].sort());

    // Nothing failed in the retry: nothing to retry; unknown jobs 404.
    const again = await stack.api("POST", `/v1/metric/collection-jobs/${retryJob.id}/retry`);
    expect(again.status).toBe(400);
    expect(again.body.error.message).toMatch(/no failed items/);
    expect((await stack.api("POST", "/v1/metric/collection-jobs/nope/retry")).status).toBe(404);
  });

  it("refuses to retry a job that is still running (409)", async () => {
    // Evaluations wait until the retry was answered: the job is certainly running when it comes.
    let answered: () => void = () => {};
    const retryAnswered = new Promise<void>((resolve) => {
      answered = resolve;
    });
    evaluate = async (definition, call) => {
      await retryAnswered;
      return evaluateByCalculationType(definition, call);
    };
    const callIds = await createCalls(stack.api, 3);
    const [metric] = await createMetrics(stack.api, [{ ...standardMetrics[0], slug: "retry-running" }]);
    const created = await stack.api("POST", "/v1/metric/collection-jobs", { callIds, metrics: [{ id: metric!.id }] });
    const running = await stack.api("POST", `/v1/metric/collection-jobs/${created.body.data.id}/retry`);
    answered();
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

  it("drops a malformed work message at the dead-letter queue without touching any job", async () => {
    const { SQSClient, SendMessageCommand, GetQueueAttributesCommand } = await import("@aws-sdk/client-sqs");
    const sqs = new SQSClient({ endpoint: process.env.SQS_ENDPOINT, region: "us-east-1" });
    const deadLetterInvocations = () => (stack.stats().consumers["dead-letter-recorder"] as SqsConsumerStats).succeeded;
    const before = deadLetterInvocations();
    await sqs.send(new SendMessageCommand({ QueueUrl: stack.queueUrls.work, MessageBody: "{not json" }));
    // Three receives on the work queue, then the dead-letter recorder takes it and drops it.
    await waitFor(async () => (deadLetterInvocations() > before ? true : undefined), {
      what: "the dead-letter recorder to take the malformed message",
    });
    const { Attributes } = await sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: stack.queues.work.dlqUrl,
        AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
      }),
    );
    expect(
      Number(Attributes?.ApproximateNumberOfMessages) + Number(Attributes?.ApproximateNumberOfMessagesNotVisible),
    ).toBe(0);
  });
});
