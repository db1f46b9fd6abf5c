import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { countDeliveries } from "../support/deliveries.ts";
import { createCalls, createMetrics, jobValues, standardMetrics } from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitForJobEnd } from "../support/stack.ts";

/** Every consumer a job's items pass through, queue and stream alike. */
const consumers = ["dispatcher", "evaluator", "stream-router", "rollup-applier"];

describe("every SQS and stream batch delivered twice, some twins at the same time", () => {
  let stack: TestStack;
  const deliveries = countDeliveries(consumers);
  beforeAll(async () => {
    stack = await startTestStack({
      runtime: {
        deliverEachBatchTwice: true,
        twinDelivery: "alternating",
        handlerOverrides: deliveries.handlerOverrides,
      },
    });
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

    // Each batch really reached its handler twice: counted inside the handlers, once every
    // twin has run (a batch may still be between its two deliveries when the job ends).
    const summaries = await deliveries.everyTwinDelivered();
    // 30 items in batches of at most 20: two batches at least, the second one's twin concurrent.
    const evaluator = summaries.find((s) => s.id === "evaluator");
    expect(evaluator?.batches).toBeGreaterThanOrEqual(2);
    expect(evaluator?.overlapped).toBeGreaterThanOrEqual(1);

    // With every delivery done, the second ones changed nothing.
    const again = await stack.api("GET", `/v1/metric/collection-jobs/${job.id}`);
    expect(again.body.data).toMatchObject({ completedItems: 30, failedItems: 0, status: "COMPLETED" });
    expect(await jobValues(stack.api, job.id)).toHaveLength(30);
  });
});
