import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCalls, createMetrics, jobValues, standardMetrics } from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitForJobEnd } from "../support/stack.ts";

describe("collection job pipeline on the local engines", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(() => stack?.stop());

  it("runs a 20-call x 3-metric job to COMPLETED with exact counts and correct values", async () => {
    const callIds = await createCalls(stack.api, 20);
    const metrics = await createMetrics(stack.api, standardMetrics);

    const created = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds,
      metrics: metrics.map((m) => ({ id: m.id })),
      metadata: { purpose: "test" },
    });
    expect(created.status).toBe(201);
    expect(created.body.data).toMatchObject({ status: "PENDING", totalItems: 60, completedItems: 0, failedItems: 0 });

    const job = await waitForJobEnd(stack.api, created.body.data.id);
    expect(job).toMatchObject({ status: "COMPLETED", totalItems: 60, completedItems: 60, failedItems: 0 });
    expect(Date.parse(job.completedAt)).toBeGreaterThanOrEqual(Date.parse(job.startedAt));

    const values = await jobValues(stack.api, job.id);
    expect(values).toHaveLength(60);
    // Worked out from sampleCall: durationMs 60 000; four segments alternating AGENT, CUSTOMER,
    // AGENT, CUSTOMER = 4 turns; "sorry" in the second segment and "Sorry" in the third = 2.
    const expected: Record<string, number> = { "call-duration": 60_000, "turn-count": 4, apologies: 2 };
    for (const callId of callIds) {
      for (const metric of standardMetrics) {
        const value = values.find((v) => v.callId === callId && v.slug === metric.slug);
        expect(value, `${metric.slug} of ${callId}`).toMatchObject({
          captureStatus: "SUCCESS",
          metricVersion: 1,
          context: "CALL",
          value: expected[metric.slug],
        });
      }
    }
  });

  it("groups metric values per definition and filters by status", async () => {
    const [emptyCall] = await createCalls(stack.api, 1, { transcript: [] });
    const metrics = await createMetrics(stack.api, [
      { ...standardMetrics[1], slug: "turns-2" },
      { ...standardMetrics[0], slug: "duration-2" },
    ]);
    const created = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds: [emptyCall],
      metrics: metrics.map((m) => ({ id: m.slug })),
    });
    const job = await waitForJobEnd(stack.api, created.body.data.id);
    // DATA_MISSING counts as completed.
    expect(job).toMatchObject({ status: "COMPLETED", completedItems: 2, failedItems: 0 });

    const all = await stack.api("GET", `/v1/metric/collection-jobs/${job.id}/metric-values?status=all`);
    expect(all.body.data.map((g: any) => g.slug)).toEqual(["turns-2", "duration-2"]);
    expect(all.body.data[0]).toMatchObject({ metricDefinitionId: metrics[0]!.id, type: "COUNT", name: "turn count" });
    expect(all.body.data[0].values[0]).toMatchObject({ captureStatus: "DATA_MISSING", callId: emptyCall });
    expect(all.body.data[1].values[0]).toMatchObject({ captureStatus: "SUCCESS", value: 60_000 });

    const success = await stack.api("GET", `/v1/metric/collection-jobs/${job.id}/metric-values?status=success`);
    expect(success.body.data[0].values).toHaveLength(0);
    expect(success.body.data[1].values).toHaveLength(1);

    const callMetrics = await stack.api("GET", `/v1/call/${emptyCall}/metrics?status=all`);
    expect(callMetrics.status).toBe(200);
    expect(callMetrics.body.data).toHaveLength(2);
    const callSuccess = await stack.api("GET", `/v1/call/${emptyCall}/metrics?status=success`);
    expect(callSuccess.body.data).toHaveLength(1);
  });

  it("freezes metric versions at job creation", async () => {
    const [callId] = await createCalls(stack.api, 1);
    const [metric] = await createMetrics(stack.api, [
      {
        ...standardMetrics[2],
        slug: "frozen-keywords",
        builtIn: { kind: "KEYWORD_MATCH_COUNT", keywords: ["refund"] },
      },
    ]);
    const created = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds: [callId],
      metrics: [{ id: metric!.id }],
    });
    const updated = await stack.api("PUT", `/v1/metric/definitions/${metric!.id}`, {
      builtIn: { kind: "KEYWORD_MATCH_COUNT", keywords: ["thank"] },
    });
    expect(updated.body.data.version).toBe(2);
    const job = await waitForJobEnd(stack.api, created.body.data.id);
    expect(job.metrics).toEqual([{ id: metric!.id, version: 1, slug: "frozen-keywords", name: "apologies" }]);
    const [value] = await jobValues(stack.api, job.id);
    expect(value).toMatchObject({ metricVersion: 1, value: 1 });
  });
});
