/** Scheduled backfills on the local engines: onlyMissing, caps, overlap, version changes, schedules. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runDueBackfills } from "../../shared/backfills/run.ts";
import { createCalls, createMetrics, jobValues, llmMetric, standardMetrics } from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitForJobEnd } from "../support/stack.ts";

describe("scheduled backfills", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({ env: { BACKFILL_MAX_ITEMS: "5" } });
  });
  afterAll(() => stack?.stop());

  const backfill = async (body: object) => {
    const response = await stack.api("POST", "/v1/backfills", body);
    expect(response.status, JSON.stringify(response.body)).toBe(201);
    return response.body.data;
  };
  const run = (id: string) => stack.api("POST", `/v1/backfills/${id}/run`);

  it("validates backfills with clear 400s and supports CRUD with soft delete", async () => {
    await createMetrics(stack.api, [{ ...standardMetrics[0], slug: "bf-crud" }]);
    const bad = await stack.api("POST", "/v1/backfills", {
      name: "x",
      schedule: "daily",
      metrics: [{ id: "bf-crud" }],
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details[0]).toMatchObject({
      field: "body.schedule",
      message: expect.stringMatching(/rate\(N/),
    });
    const both = await stack.api("POST", "/v1/backfills", {
      name: "x",
      schedule: "rate(1 day)",
      metrics: [{ id: "bf-crud" }],
      callFilter: { startedAfter: "2026-01-01T00:00:00Z", lookback: "P1D" },
    });
    expect(both.body.error.details[0].message).toMatch(/not both/);
    const unknown = await stack.api("POST", "/v1/backfills", {
      name: "x",
      schedule: "rate(1 day)",
      metrics: [{ id: "nope" }],
    });
    expect(unknown.body.error.message).toMatch(/Unknown metric ids: nope/);

    const created = await backfill({ name: "nightly", schedule: "cron(0 2 * * ? *)", metrics: [{ id: "bf-crud" }] });
    expect(created).toMatchObject({ onlyMissing: true, status: "ACTIVE", callFilter: {} });
    expect(created.nextRunAt).toMatch(/T02:00:00.000Z$/);
    const updated = await stack.api("PUT", `/v1/backfills/${created.id}`, { schedule: "rate(6 hours)" });
    expect(updated.body.data.schedule).toBe("rate(6 hours)");
    expect((await stack.api("GET", "/v1/backfills")).body.data.map((b: any) => b.id)).toContain(created.id);
    expect((await stack.api("DELETE", `/v1/backfills/${created.id}`)).status).toBe(200);
    expect((await stack.api("GET", `/v1/backfills/${created.id}`)).status).toBe(404);
  });

  it("runs only the missing pairs, caps a run with a clear message, and finds nothing once done", async () => {
    const [m1, m2] = await createMetrics(stack.api, [
      { ...standardMetrics[0], slug: "bf-duration" },
      { ...standardMetrics[1], slug: "bf-turns" },
    ]);
    const callIds = await createCalls(stack.api, 3, { agentId: "bf-agent" });
    await createCalls(stack.api, 1, { agentId: "other-agent" });
    // Two pairs already have values.
    const existing = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds: callIds.slice(0, 2),
      metrics: [{ id: m1!.id }],
    });
    await waitForJobEnd(stack.api, existing.body.data.id);

    const created = await backfill({
      name: "fill",
      schedule: "cron(0 2 * * ? *)",
      metrics: [{ id: m1!.id }, { id: m2!.id }],
      callFilter: { agentId: "bf-agent" },
      judgeMode: "grouped",
    });
    // Backfills wait for results anyway: they default to the Message Batches API at half price.
    expect(created.llmMode).toBe("batch");
    // 3 calls × 2 metrics − 2 existing = 4 missing: under the cap of 5.
    const first = await run(created.id);
    expect(first.status).toBe(201);
    expect(first.body.data).toMatchObject({ status: "started", items: 4, trigger: "manual" });
    const job = await waitForJobEnd(stack.api, first.body.data.jobId);
    expect(job).toMatchObject({
      status: "COMPLETED",
      triggeredBy: "SCHEDULE",
      judgeMode: "grouped",
      llmMode: "batch",
      totalItems: 4,
      metadata: { backfillId: created.id },
    });
    const pairs = (await jobValues(stack.api, job.id)).map((v) => `${v.callId}|${v.metricDefinitionId}`).sort();
    const expected = [
      `${callIds[2]}|${m1!.id}`,
      `${callIds[0]}|${m2!.id}`,
      `${callIds[1]}|${m2!.id}`,
      `${callIds[2]}|${m2!.id}`,
    ].sort();
    expect(pairs).toEqual(expected);

    const second = await run(created.id);
    expect(second.body.data).toMatchObject({ status: "nothing-to-do", items: 0 });
    expect(second.body.data.jobId).toBeUndefined();

    // A definition change makes values of older versions missing: 3 calls for the new version.
    await stack.api("PUT", `/v1/metric/definitions/${m1!.id}`, { name: "Duration v2" });
    const third = await run(created.id);
    expect(third.body.data).toMatchObject({ status: "started", items: 3 });
    await waitForJobEnd(stack.api, third.body.data.jobId);

    // 7 calls × the changed metric + 4 new calls × the other = 11 items, over the cap of 5:
    // whole calls, oldest first, up to the cap; the rest run next time.
    await createCalls(stack.api, 4, { agentId: "bf-agent" });
    await stack.api("PUT", `/v1/metric/definitions/${m1!.id}`, { name: "Duration v3" });
    const capped = await run(created.id);
    expect(capped.body.data.status).toBe("started");
    expect(capped.body.data.items).toBeLessThanOrEqual(5);
    expect(capped.body.data.errorMessage).toMatch(new RegExp(`capped at ${capped.body.data.items} of 11 items`));
    await waitForJobEnd(stack.api, capped.body.data.jobId);
    const rest = await run(created.id);
    expect(rest.body.data.items).toBe(Math.min(5, 11 - capped.body.data.items));
  });

  it("never lets two runs overlap: 409 while the previous run's job is still running", async () => {
    stack.anthropic.configure({ latencyMs: 400 });
    try {
      const [judge] = await createMetrics(stack.api, [llmMetric("bf-slow", "BOOLEAN", 'Was "refund" said?')]);
      await createCalls(stack.api, 3, { agentId: "bf-slow-agent" });
      const created = await backfill({
        name: "slow",
        schedule: "rate(1 day)",
        metrics: [{ id: judge!.id }],
        callFilter: { agentId: "bf-slow-agent" },
      });
      const [a, b] = await Promise.all([run(created.id), run(created.id)]);
      expect([a.status, b.status].sort()).toEqual([201, 409]);
      const started = a.status === 201 ? a : b;
      expect((await run(created.id)).status).toBe(409);
      await waitForJobEnd(stack.api, started.body.data.jobId);
      expect((await run(created.id)).body.data.status).toBe("nothing-to-do");
    } finally {
      stack.anthropic.configure({ latencyMs: 0 });
    }
  });

  it("runs due backfills on schedule and schedules the next run", async () => {
    const [metric] = await createMetrics(stack.api, [{ ...standardMetrics[1], slug: "bf-scheduled" }]);
    const startedAt = new Date(Date.now() - 3_600_000);
    await createCalls(stack.api, 2, {
      agentId: "bf-scheduled-agent",
      startedAt: startedAt.toISOString(),
      endedAt: new Date(startedAt.getTime() + 60_000).toISOString(),
    });
    const created = await backfill({
      name: "every minute",
      schedule: "rate(1 minute)",
      metrics: [{ id: metric!.id }],
      callFilter: { agentId: "bf-scheduled-agent", lookback: "P1D" },
    });
    const due = new Date(Date.parse(created.nextRunAt) + 1000);
    // The calls fall inside the lookback measured from the (simulated) run time.
    await runDueBackfills(due);
    const after = (await stack.api("GET", `/v1/backfills/${created.id}`)).body.data;
    expect(after.lastRun).toMatchObject({ trigger: "schedule", status: "started", items: 2 });
    expect(Date.parse(after.nextRunAt)).toBeGreaterThan(due.getTime());
    await waitForJobEnd(stack.api, after.lastRun.jobId);
  });
});
