/**
 * One evaluator invocation runs its batch's model calls at once, on the local stack: with a
 * single evaluator running at a time, requests still overlap; and each call's first request
 * writes its prompt cache before its other metrics read it. A job's first model call goes
 * alone (a key the API refuses costs one request); once the job has paid for an answer,
 * an invocation starts its calls together.
 */
import type { Context, SQSEvent } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHandler } from "../../functions/workers/evaluator.ts";
import { defaultEvaluatorDeps } from "../../shared/pipeline/evaluate.ts";
import { createCalls, createMetrics, llmMetric } from "../support/fixtures.ts";
import { runJobToEnd, startTestStack, type TestStack } from "../support/stack.ts";

const LATENCY_MS = 500;

describe("an evaluator's model calls", { timeout: 120_000 }, () => {
  let stack: TestStack;
  const realEvaluator = createHandler(defaultEvaluatorDeps);
  /** When set, each batch runs as its first record alone, then the rest: two invocations in a row. */
  let splitBatches = false;
  /** Request indexes before the second half of a split batch started. */
  const secondHalfAfter: number[] = [];
  beforeAll(async () => {
    stack = await startTestStack({
      // One evaluator invocation at a time: any overlap is inside an invocation.
      runtime: {
        maxPollersPerQueue: 1,
        handlerOverrides: {
          evaluator: async (event: SQSEvent, context: Context) => {
            const [head, ...rest] = event.Records;
            if (!splitBatches || !head || rest.length === 0) return realEvaluator(event, context);
            const first = (await realEvaluator({ Records: [head] }, context)) as { batchItemFailures: unknown[] };
            secondHalfAfter.push(stack.anthropic.requests().length);
            const second = (await realEvaluator({ Records: rest }, context)) as { batchItemFailures: unknown[] };
            return { batchItemFailures: [...first.batchItemFailures, ...second.batchItemFailures] };
          },
        },
      },
      anthropic: { latencyMs: LATENCY_MS },
    });
  });
  afterAll(() => stack?.stop());

  it("overlap within an invocation, each call's first request before its others", async () => {
    const metrics = await createMetrics(
      stack.api,
      Array.from({ length: 4 }, (_, i) => llmMetric(`overlap-${i}`, "BOOLEAN", `Was "refund" said (${i})?`)),
    );
    const callIds = await createCalls(stack.api, 2);
    expect(await runJobToEnd(stack.api, callIds, metrics, 60_000)).toMatchObject({
      status: "COMPLETED",
      completedItems: 8,
    });

    const served = stack.anthropic.requests();
    expect(served).toHaveLength(8);
    const startedAt = served.map((request) => request.receivedAt);
    // Most requests running at one moment: one at a time would make it 1.
    const peak = Math.max(...startedAt.map((t) => startedAt.filter((s) => s <= t && t < s + LATENCY_MS).length));
    expect(peak).toBeGreaterThanOrEqual(3);

    for (const requests of Map.groupBy(served, (request) => request.prefixHash).values()) {
      const [first, ...others] = requests.sort((a, b) => a.index - b.index);
      expect(first?.usage?.cache_creation_input_tokens).toBeGreaterThan(0);
      expect(first?.usage?.cache_read_input_tokens).toBe(0);
      for (const other of others) expect(other.usage?.cache_read_input_tokens).toBeGreaterThan(0);
    }
  });

  it("starts a paid job's calls together: only a job's first model call goes alone", async () => {
    const metrics = await createMetrics(
      stack.api,
      Array.from({ length: 3 }, (_, i) => llmMetric(`paid-${i}`, "BOOLEAN", `Was "sorry" said (${i})?`)),
    );
    const callIds = await createCalls(stack.api, 2);
    stack.anthropic.reset();
    splitBatches = true;
    try {
      expect(await runJobToEnd(stack.api, callIds, metrics, 60_000)).toMatchObject({ completedItems: 6 });
    } finally {
      splitBatches = false;
    }
    // The batch's first item alone (a first model call: the job had paid for none), then the
    // other five in an invocation of their own, which knows the job has paid for an answer.
    expect(secondHalfAfter).toHaveLength(1);
    const served = stack.anthropic.requests();
    expect(served).toHaveLength(6);
    const secondHalf = served.slice(secondHalfAfter[0]).map((request) => request.receivedAt);
    const [firstArrival, nextArrival] = secondHalf.sort((a, b) => a - b);
    // Its two calls' first requests start together, not one model latency apart.
    expect(nextArrival! - firstArrival!).toBeLessThan(LATENCY_MS / 2);
  });
});
