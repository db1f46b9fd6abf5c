/**
 * A 429 storm lasting minutes, on the local stack with the fake Anthropic server: no item is
 * given up (rate limiting never spends an item's attempts), and each is judged when the
 * storm ends and counted once.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCalls, createMetrics, jobValues, llmMetric } from "../support/fixtures.ts";
import { runJobToEnd, startTestStack, type TestStack } from "../support/stack.ts";

const STORM_MS = 180_000;

describe("a 429 storm of three minutes", { timeout: STORM_MS + 120_000 }, () => {
  let stack: TestStack;
  beforeAll(async () => {
    // As in AWS (six times the evaluator's 300 s timeout), a batch is never redelivered while
    // its invocation still runs: after a long storm the limiter spreads a batch's calls over
    // many seconds, longer still when the other test files slow the shared DynamoDB Local.
    stack = await startTestStack({
      anthropic: { retryAfterSeconds: 5 },
      queueOverrides: { work: { visibilityTimeoutSeconds: 600, maxReceiveCount: 5 } },
    });
  });
  afterAll(() => stack?.stop());

  it("gives up no item, and judges every item when it ends, counted once", async () => {
    const metrics = await createMetrics(
      stack.api,
      Array.from({ length: 4 }, (_, i) => llmMetric(`storm-${i}`, "BOOLEAN", `Was "refund" said (${i})?`)),
    );
    const callIds = await createCalls(stack.api, 4);
    const stormEndsAt = Date.now() + STORM_MS;
    stack.anthropic.configure({ fault: () => (Date.now() < stormEndsAt ? "rate_limit" : undefined) });
    const job = await runJobToEnd(stack.api, callIds, metrics, STORM_MS + 90_000);
    // On failure, say why the items ended as they did.
    const why =
      job.status === "COMPLETED" ? "" : JSON.stringify((await jobValues(stack.api, job.id)).map((v) => v.errorMessage));
    expect(job, why).toMatchObject({ status: "COMPLETED", totalItems: 16, completedItems: 16, failedItems: 0 });

    const requests = stack.anthropic.requests();
    const limited = requests.filter((request) => request.status === 429);
    // The items kept trying all through the storm (none was given up or dead-lettered)…
    const times = limited.map((request) => request.receivedAt);
    expect(Math.max(...times) - Math.min(...times)).toBeGreaterThan(STORM_MS - 15_000);
    expect(new Set(limited.map((request) => request.itemHash)).size).toBe(16);
    // …and each was judged after it (a redelivery on a loaded machine may ask twice: at least
    // once, counted once).
    const answered = requests.filter((request) => request.status === 200);
    expect(new Set(answered.map((request) => request.itemHash)).size).toBe(16);
    expect(Math.min(...answered.map((request) => request.receivedAt))).toBeGreaterThanOrEqual(stormEndsAt);
    const values = await jobValues(stack.api, job.id);
    expect(values).toHaveLength(16);
    expect(values.every((value) => value.captureStatus === "SUCCESS")).toBe(true);
  });
});
