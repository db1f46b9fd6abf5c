import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCalls, createMetrics, jobValues, standardMetrics } from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitFor, waitForJobEnd } from "../support/stack.ts";

describe("every SQS batch delivered twice", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({ runtime: { deliverEachBatchTwice: true } });
  });
  afterAll(() => stack?.stop());

  it("gives exactly the counters and values of a single delivery", async () => {
    const callIds = await createCalls(stack.api, 10);
    const metrics = await createMetrics(stack.api, standardMetrics);
    const created = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds,
      metrics: metrics.map((m) => ({ id: m.id })),
    });
    const job = await waitForJobEnd(stack.api, created.body.data.id);
    expect(job).toMatchObject({ status: "COMPLETED", totalItems: 30, completedItems: 30, failedItems: 0 });

    const values = await jobValues(stack.api, job.id);
    expect(values).toHaveLength(30);
    expect(new Set(values.map((v) => `${v.callId}|${v.metricDefinitionId}`)).size).toBe(30);
    expect(values.every((v) => v.captureStatus === "SUCCESS")).toBe(true);
    // Each batch really was handled twice (a redelivered batch may still be between its two calls).
    const work = await waitFor(async () => {
      const stats = stack.stats().queues.work!;
      return stats.invocations % 2 === 0 ? stats : undefined;
    });
    expect(work.invocations).toBeGreaterThanOrEqual(2);

    // Nothing changes afterwards either.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const again = await stack.api("GET", `/v1/metric/collection-jobs/${job.id}`);
    expect(again.body.data).toMatchObject({ completedItems: 30, failedItems: 0, status: "COMPLETED" });
  });
});
