/** A job's cost estimated before it runs: counts, ranges per metric and per mode, and the job's real cost within it. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { builtInMetric, createCalls, createMetrics, llmMetric } from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitForJobEnd } from "../support/stack.ts";

describe("job cost estimates", () => {
  let stack: TestStack;
  let callIds: string[];
  beforeAll(async () => {
    stack = await startTestStack();
    callIds = await createCalls(stack.api, 6);
    await createMetrics(stack.api, [
      llmMetric("estimate-refund", "BOOLEAN", 'Did the customer say "refund"?'),
      llmMetric("estimate-polite", "BOOLEAN", "Was the agent polite throughout the call?"),
      builtInMetric("estimate-turns", { kind: "TURN_COUNT" }, "COUNT"),
    ]);
  });
  afterAll(() => stack?.stop());

  const body = () => ({
    callIds,
    metrics: [{ id: "estimate-refund" }, { id: "estimate-polite" }, { id: "estimate-turns" }],
  });

  it("counts the items and prices each metric and mode, creating nothing", async () => {
    const before = (await stack.api("GET", "/v1/metric/collection-jobs")).body.data.length;
    const estimate = await stack.api("POST", "/v1/metric/collection-jobs/estimate", body());
    expect(estimate.status).toBe(200);
    const data = estimate.body.data;
    expect(data).toMatchObject({ calls: 6, items: 18, llmItems: 12, judgeMode: "isolated", llmMode: "realtime" });
    expect(data.unpricedModels).toEqual([]);
    const bySlug = Object.fromEntries(data.metrics.map((metric: any) => [metric.slug, metric]));
    expect(bySlug["estimate-turns"].estimatedCostUsd).toEqual({ low: 0, high: 0 });
    expect(bySlug["estimate-refund"].estimatedCostUsd.low).toBeGreaterThan(0);
    expect(bySlug["estimate-refund"].estimatedCostUsd.high).toBeGreaterThan(
      bySlug["estimate-refund"].estimatedCostUsd.low,
    );
    const sumLow = data.metrics.reduce((sum: number, metric: any) => sum + metric.estimatedCostUsd.low, 0);
    expect(sumLow).toBeCloseTo(data.estimatedCostUsd.low, 5);
    const mode = (judgeMode: string, llmMode: string) =>
      data.byMode.find((m: any) => m.judgeMode === judgeMode && m.llmMode === llmMode).estimatedCostUsd;
    expect(mode("isolated", "realtime")).toEqual(data.estimatedCostUsd);
    expect(mode("isolated", "batch").high).toBeCloseTo(mode("isolated", "realtime").high / 2, 5);
    expect(mode("grouped", "realtime").low).toBeLessThan(mode("isolated", "realtime").high);
    expect((await stack.api("GET", "/v1/metric/collection-jobs")).body.data).toHaveLength(before);
  });

  it("brackets what the job then costs", async () => {
    const estimate = (await stack.api("POST", "/v1/metric/collection-jobs/estimate", body())).body.data;
    const created = await stack.api("POST", "/v1/metric/collection-jobs", body());
    const job = await waitForJobEnd(stack.api, created.body.data.id);
    expect(job.status).toBe("COMPLETED");
    expect(job.estimatedCostUsd).toBeGreaterThanOrEqual(estimate.estimatedCostUsd.low);
    expect(job.estimatedCostUsd).toBeLessThanOrEqual(estimate.estimatedCostUsd.high);
  });

  it("refuses unknown ids as job creation does", async () => {
    const unknown = await stack.api("POST", "/v1/metric/collection-jobs/estimate", {
      callIds: [...callIds, "no-such-call"],
      metrics: [{ id: "no-such-metric" }],
    });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toBe("Unknown metric ids: no-such-metric; Unknown call ids: no-such-call");
    expect(unknown.body.error.details).toEqual({
      unknownMetricIds: ["no-such-metric"],
      unknownCallIds: ["no-such-call"],
    });
  });
});
