/**
 * One evaluator invocation runs its batch's model calls at once, on the local stack: with a
 * single evaluator running at a time, requests still overlap; and each call's first request
 * writes its prompt cache before its other metrics read it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCalls, createMetrics, llmMetric } from "../support/fixtures.ts";
import { runJobToEnd, startTestStack, type TestStack } from "../support/stack.ts";

const LATENCY_MS = 500;

describe("an evaluator's model calls", { timeout: 120_000 }, () => {
  let stack: TestStack;
  /** When each request arrived, by index in the fake server's log. */
  const arrivals = new Map<number, number>();
  beforeAll(async () => {
    stack = await startTestStack({
      // One evaluator invocation at a time: any overlap is inside an invocation.
      runtime: { maxPollersPerQueue: 1 },
      anthropic: {
        latencyMs: LATENCY_MS,
        fault: (request) => {
          arrivals.set(request.index, Date.now());
          return undefined;
        },
      },
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
    const startedAt = served.map((request) => arrivals.get(request.index) ?? Number.NaN);
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
});
