/**
 * Chaos on the evaluator, on the real local engines: every way an item used to reach the
 * dead-letter queue unaccounted (or a job to stay PROCESSING) is provoked here, and every
 * job must still end with `completedItems + failedItems = totalItems`, nothing counted twice.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { TransactionCanceledException } from "@aws-sdk/client-dynamodb";
import { SetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import type { Context, SQSBatchResponse, SQSEvent } from "aws-lambda";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createHandler } from "../../functions/workers/evaluator.ts";
import { dynamo, sqs } from "../../shared/aws.ts";
import { requireQueueUrl, resetConfig } from "../../shared/config.ts";
import { defaultEvaluatorDeps } from "../../shared/pipeline/evaluate.ts";
import { type EvaluateItem, evaluateByCalculationType } from "../../shared/pipeline/evaluators.ts";
import { createJob, expectCountsMatchValues, llmMetric, standardMetrics } from "../support/fixtures.ts";
import { crashTestQueues, startTestStack, type TestStack, waitFor, waitForJobEnd } from "../support/stack.ts";

type SqsHandler = (event: SQSEvent, context: Context) => Promise<unknown>;

let stack: TestStack;
let evaluate: EvaluateItem = evaluateByCalculationType;
let evaluator: SqsHandler;
const realEvaluator = createHandler({
  ...defaultEvaluatorDeps,
  evaluate: (definition, call) => evaluate(definition, call),
});

beforeAll(async () => {
  stack = await startTestStack({
    queueOverrides: crashTestQueues,
    // Results are written within 200 ms of being known: well before the simulated crash below.
    env: { RECORD_GROUP_WINDOW_MS: "200" },
    runtime: { handlerOverrides: { evaluator: (event: SQSEvent, context: Context) => evaluator(event, context) } },
  });
});
afterAll(() => stack?.stop());

/** Replaces the document client's send for one test; the original comes back after it. */
type Send = (command: any) => Promise<any>;
let restoreSend: (() => void) | undefined;
function interceptDynamo(intercept: (command: any, send: Send) => Promise<any>) {
  const client = dynamo() as unknown as { send: Send };
  const original = client.send.bind(client);
  client.send = (command) => intercept(command, original);
  restoreSend = () => {
    client.send = original;
  };
}

beforeEach(() => {
  evaluate = evaluateByCalculationType;
  evaluator = realEvaluator;
});
afterEach(() => {
  restoreSend?.();
  restoreSend = undefined;
  stack.anthropic.configure({ fault: undefined });
});

const setVisibility = (queueUrl: string, seconds: number) =>
  sqs().send(new SetQueueAttributesCommand({ QueueUrl: queueUrl, Attributes: { VisibilityTimeout: String(seconds) } }));

let run = 0;
const newJob = (calls: number, metrics: { slug: string }[]) => createJob(stack.api, calls, metrics, `chaos-${++run}`);
const judged = [
  llmMetric("resolved", "BOOLEAN", "Was the issue resolved?"),
  llmMetric("empathy", "SCALE", "Rate empathy", { scaleMin: 1, scaleMax: 5 }),
];

describe("every job finishes, whatever fails", () => {
  it("never spends the poison budget on rate limits and overload (429/529)", async () => {
    // Each item is refused five times (more than the test queue's 3 receives) before it is answered.
    stack.anthropic.configure({
      fault: (request) => (request.attempt <= 5 ? (request.attempt % 2 ? "rate_limit" : "overloaded") : undefined),
    });
    const { jobId } = await newJob(2, judged);
    const job = await waitForJobEnd(stack.api, jobId);
    expect(job).toMatchObject({ status: "COMPLETED", totalItems: 4, completedItems: 4, failedItems: 0 });
    await expectCountsMatchValues(stack.api, job);
    const perItem = Map.groupBy(stack.anthropic.requests(), (request) => request.itemHash);
    for (const attempts of perItem.values()) {
      expect(attempts.map((attempt) => attempt.status)).toEqual([429, 529, 429, 529, 429, 200]);
    }
  });

  it("records an item that keeps meeting rate limits as ERROR after the time ceiling", async () => {
    process.env.RATE_LIMIT_MAX_WAIT_SECONDS = "3";
    resetConfig();
    try {
      stack.anthropic.configure({ fault: () => "rate_limit" });
      const { jobId } = await newJob(1, judged.slice(0, 1));
      const job = await waitForJobEnd(stack.api, jobId);
      expect(job).toMatchObject({ status: "FAILED", totalItems: 1, completedItems: 0, failedItems: 1 });
      const [value] = await expectCountsMatchValues(stack.api, job);
      expect(value.errorMessage).toMatch(/^Rate limited for over 3 s: Anthropic 429/);
      // Retried all along (a second apart: the fake server's retry-after), never given up early.
      expect(stack.anthropic.requests().length).toBeGreaterThanOrEqual(3);
    } finally {
      delete process.env.RATE_LIMIT_MAX_WAIT_SECONDS;
      resetConfig();
    }
  });

  it("waits out the backoff between attempts (real delays: base 2 s)", async () => {
    process.env.RETRY_BASE_DELAY_SECONDS = "2";
    process.env.RETRY_MAX_DELAY_SECONDS = "10";
    resetConfig();
    try {
      const attemptsAt: number[] = [];
      evaluate = async (definition, call) => {
        attemptsAt.push(Date.now());
        if (attemptsAt.length <= 2) throw new Error("flaky");
        return evaluateByCalculationType(definition, call);
      };
      const { jobId } = await newJob(1, standardMetrics.slice(0, 1));
      const job = await waitForJobEnd(stack.api, jobId);
      expect(job).toMatchObject({ status: "COMPLETED", completedItems: 1, failedItems: 0 });
      expect(attemptsAt).toHaveLength(3);
      // Attempt n waits at least half of 2 s × 2^(n-1) (the jitter's floor), rounded to whole seconds.
      expect(attemptsAt[1]! - attemptsAt[0]!).toBeGreaterThanOrEqual(1000);
      expect(attemptsAt[2]! - attemptsAt[1]!).toBeGreaterThanOrEqual(2000);
    } finally {
      process.env.RETRY_BASE_DELAY_SECONDS = "0";
      process.env.RETRY_MAX_DELAY_SECONDS = "1";
      resetConfig();
    }
  });

  it("runs again, with a delay, items whose results could not be recorded, also on their last receive", async () => {
    // The recording transactions of one call's items are refused as throttled 18 times: six
    // tries per invocation, three invocations (every receive the test queue allows).
    let refusals = 0;
    let victim: string | undefined;
    interceptDynamo(async (command, send) => {
      const puts: string[] = (command.input?.TransactItems ?? []).map((action: any) => action.Put?.Item?.sk ?? "");
      if (victim && refusals < 18 && puts.some((sk) => sk.startsWith(`ITEM#${victim}#`))) {
        refusals++;
        throw new TransactionCanceledException({
          message: "Transaction cancelled",
          $metadata: {},
          CancellationReasons: puts.map(() => ({ Code: "ThrottlingError" })),
        });
      }
      return send(command);
    });
    // An invocation here retries for seconds: longer than the test queue's 2 s visibility,
    // which would redeliver its messages while it runs (never so in AWS, where the visibility
    // timeout is six times the function's).
    const workQueueUrl = requireQueueUrl("work");
    await setVisibility(workQueueUrl, 60);
    const created = newJob(3, standardMetrics);
    evaluator = async (event, context) => {
      victim ??= (await created).callIds[1];
      return realEvaluator(event, context);
    };
    const { jobId } = await created;
    const job = await waitForJobEnd(stack.api, jobId).finally(() => setVisibility(workQueueUrl, 2));
    expect(refusals).toBe(18);
    expect(job.completedItems + job.failedItems).toBe(9);
    expect(job.status).toBe("COMPLETED");
    await expectCountsMatchValues(stack.api, job);
  });

  it("gives each item of a batch whose reads fail its own attempts instead of dead-lettering the batch", async () => {
    // Every read of one call fails three times: the batches holding its items fail as a whole.
    let failures = 0;
    let victim: string | undefined;
    interceptDynamo(async (command, send) => {
      const partition = command.input?.ExpressionAttributeValues?.[":pk"];
      if (victim && failures < 3 && partition === `ORG#${stack.orgId}#CALL#${victim}`) {
        failures++;
        throw Object.assign(new Error("Throughput exceeds the current capacity of your table"), {
          name: "ProvisionedThroughputExceededException",
        });
      }
      return send(command);
    });
    const created = newJob(3, standardMetrics);
    victim = (await created).callIds[0];
    const job = await waitForJobEnd(stack.api, (await created).jobId);
    expect(failures).toBe(3);
    const values = await expectCountsMatchValues(stack.api, job);
    // Whatever ran out of attempts says why; nothing stayed unaccounted.
    for (const value of values.filter((v) => v.captureStatus === "ERROR")) {
      expect(value.errorMessage).toMatch(/^Gave up after 3 attempts: Throughput exceeds/);
    }
  });

  it("lets a value DynamoDB refuses fail only its own item, not another organization's in the same batch", async () => {
    const other = await stack.newOrganization("Other org");
    let victim: string | undefined;
    let refused = 0;
    interceptDynamo(async (command, send) => {
      const puts = (command.input?.TransactItems ?? []).flatMap((action: any) => (action.Put ? [action.Put.Item] : []));
      if (
        victim &&
        puts.some((item: any) => item.sk.startsWith(`ITEM#${victim}#`) && item.captureStatus === "SUCCESS")
      ) {
        refused++;
        throw Object.assign(new Error("Item size has exceeded the maximum allowed size"), {
          name: "ValidationException",
        });
      }
      return send(command);
    });
    // The evaluator holds what it receives until it has both jobs' six items, and runs them as one batch.
    // Held for as long as the second job takes to arrive: the queue must not hand them out again
    // meanwhile (the test queue's 2 s visibility would, and dead-letter them after three receives).
    const workQueueUrl = requireQueueUrl("work");
    await setVisibility(workQueueUrl, 60);
    const held: SQSEvent["Records"] = [];
    let release: (answer: SQSBatchResponse) => void = () => {};
    const combined = new Promise<SQSBatchResponse>((resolve) => {
      release = resolve;
    });
    const ownFailures = (answer: SQSBatchResponse, event: SQSEvent) => ({
      batchItemFailures: answer.batchItemFailures.filter((f) =>
        event.Records.some((r) => r.messageId === f.itemIdentifier),
      ),
    });
    let combinedAnswer: SQSBatchResponse | undefined;
    evaluator = async (event, context) => {
      if (combinedAnswer) return realEvaluator(event, context);
      held.push(...event.Records);
      if (held.length < 6) return ownFailures(await combined, event);
      combinedAnswer = (await realEvaluator({ Records: held }, context)) as SQSBatchResponse;
      release(combinedAnswer);
      return ownFailures(combinedAnswer, event);
    };
    const mine = await createJob(stack.api, 2, standardMetrics.slice(0, 1), `refused-${++run}`);
    victim = mine.callIds[0];
    const theirs = await createJob(other.api, 2, standardMetrics.slice(0, 2), `neighbour-${run}`);
    const [myJob, theirJob] = await Promise.all([
      waitForJobEnd(stack.api, mine.jobId),
      waitForJobEnd(other.api, theirs.jobId),
    ]).finally(() => setVisibility(workQueueUrl, 2));
    expect(new Set(held.map((record) => JSON.parse(record.body).orgId))).toEqual(new Set([stack.orgId, other.orgId]));
    expect(combinedAnswer?.batchItemFailures).toEqual([]);
    expect(refused).toBeGreaterThan(0);
    expect(theirJob).toMatchObject({ status: "COMPLETED", totalItems: 4, completedItems: 4, failedItems: 0 });
    await expectCountsMatchValues(other.api, theirJob);
    expect(myJob).toMatchObject({ status: "COMPLETED", totalItems: 2, completedItems: 1, failedItems: 1 });
    const values = await expectCountsMatchValues(stack.api, myJob);
    expect(values.find((value) => value.callId === victim)?.errorMessage).toBe(
      "The value could not be stored: Item size has exceeded the maximum allowed size",
    );
  });

  it("loses only the item in flight when an invocation dies mid-batch", async () => {
    const dyingInvocation = new AsyncLocalStorage<{ dead: boolean; die: () => void }>();
    const judgedItems: string[] = [];
    /** Items of the batch that dies, and how many of them were judged before it did. */
    const dyingBatch = new Set<string>();
    let judgedInDyingBatch = 0;
    evaluate = async (definition, call) => {
      // A Lambda that timed out is frozen: its invocation judges nothing more (the local
      // runtime would let its promises run on and judge items the redelivered batch judges too).
      if (dyingInvocation.getStore()?.dead) return new Promise(() => {});
      const item = `${call.id}|${definition.id}`;
      if (dyingBatch.has(item) && ++judgedInDyingBatch === 3) {
        dyingBatch.clear();
        dyingInvocation.getStore()?.die(); // the invocation dies while this item is in flight
        return new Promise(() => {});
      }
      judgedItems.push(item);
      return evaluateByCalculationType(definition, call);
    };
    let crashed = false;
    evaluator = async (event, context) => {
      if (crashed || event.Records.length < 4) return realEvaluator(event, context);
      crashed = true;
      for (const record of event.Records) {
        const { callId, metricId } = JSON.parse(record.body);
        dyingBatch.add(`${callId}|${metricId}`);
      }
      // Over once its third item is in flight (a Lambda timeout), however fast this machine
      // is; the queue's 2 s visibility then returns the batch.
      const invocation = { dead: false, die: () => {} };
      const died = new Promise<never>((_, reject) => {
        invocation.die = () => {
          invocation.dead = true;
          reject(new Error("Task timed out"));
        };
      });
      return Promise.race([dyingInvocation.run(invocation, () => realEvaluator(event, context)), died]);
    };
    const { jobId } = await newJob(4, standardMetrics);
    const job = await waitForJobEnd(stack.api, jobId);
    expect(crashed).toBe(true);
    expect(judgedInDyingBatch).toBe(3);
    expect(job).toMatchObject({ status: "COMPLETED", totalItems: 12, completedItems: 12, failedItems: 0 });
    await expectCountsMatchValues(stack.api, job);
    // The two items judged before the crash were recorded then and not judged again.
    expect(judgedItems).toHaveLength(12);
    expect(new Set(judgedItems).size).toBe(12);
  });

  it("does not acknowledge at first sight an item whose job a consistent read does not find", async () => {
    const { SQSClient, SendMessageCommand } = await import("@aws-sdk/client-sqs");
    const sqs = new SQSClient({ endpoint: process.env.SQS_ENDPOINT, region: "us-east-1" });
    const { jobId, callIds, metrics } = await createJob(stack.api, 1, standardMetrics.slice(0, 1), `ghost-${++run}`);
    await waitForJobEnd(stack.api, jobId);
    const ghost = {
      orgId: stack.orgId,
      jobId: "job-that-does-not-exist",
      callId: callIds[0],
      metricId: metrics[0]!.id,
      metricVersion: 1,
    };
    let deliveries = 0;
    let spent = false;
    evaluator = async (event, context) => {
      const answer = await realEvaluator(event, context);
      for (const record of event.Records) {
        const item = JSON.parse(record.body);
        if (item.jobId !== ghost.jobId) continue;
        deliveries++;
        // Its third attempt spends the budget: nothing is left to send back.
        if ((item.failedAttempts ?? 0) + Number(record.attributes.ApproximateReceiveCount) >= 3) spent = true;
      }
      return answer;
    };
    await sqs.send(new SendMessageCommand({ QueueUrl: stack.queueUrls.work, MessageBody: JSON.stringify(ghost) }));
    await waitFor(async () => (spent ? true : undefined), { timeoutMs: 60_000, what: "the item's last attempt" });
    expect(deliveries).toBe(3);
  });

  it("records as ERROR an item whose every delivery crashed, once it is dead-lettered", async () => {
    let victim: string | undefined;
    let crashes = 0;
    evaluator = async (event, context) => {
      // The invocation dies on one item each time (out of memory, say): it never answers for it.
      const poison = event.Records.filter((record) => victim && JSON.parse(record.body).callId === victim);
      const rest = event.Records.filter((record) => !poison.includes(record));
      const answer = (
        rest.length > 0 ? await realEvaluator({ Records: rest }, context) : { batchItemFailures: [] }
      ) as SQSBatchResponse;
      for (const record of poison) {
        crashes++;
        answer.batchItemFailures.push({ itemIdentifier: record.messageId });
      }
      return answer;
    };
    const created = await newJob(2, standardMetrics.slice(0, 1));
    victim = created.callIds[1];
    const job = await waitForJobEnd(stack.api, created.jobId);
    expect(crashes).toBe(3);
    expect(job).toMatchObject({ status: "COMPLETED", totalItems: 2, completedItems: 1, failedItems: 1 });
    const values = await expectCountsMatchValues(stack.api, job);
    const dead = values.find((value) => value.callId === victim);
    expect(dead.errorMessage).toMatch(/^Dead-lettered: no evaluation of this item completed/);
  });
});
