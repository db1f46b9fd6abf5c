/**
 * An organization's monthly LLM budget: its spend counts each answer once (jobs' and the
 * playground's), a job reaching what was left stops its model calls mid-job under
 * concurrent evaluators, and work that would exceed it is refused with 402 before it runs.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCalls, createMetrics, jobValues, llmMetric } from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitForJobEnd } from "../support/stack.ts";

describe("monthly LLM budget", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({ anthropic: { latencyMs: 300 } });
  });
  afterAll(() => stack?.stop());

  it("counts spend once, stops a job at what was left, then refuses more work with 402", async () => {
    const org = await stack.newOrganization("Budgeted");
    const callIds = await createCalls(org.api, 15);
    await createMetrics(org.api, [
      llmMetric("budget-refund", "BOOLEAN", 'Did the customer say "refund"?'),
      llmMetric("budget-polite", "BOOLEAN", "Was the agent polite?"),
      llmMetric("budget-sorry", "BOOLEAN", 'Did anyone say "sorry"?'),
    ]);
    const probe = await org.api("POST", "/v1/metric/playground", {
      callId: callIds[0],
      metric: { id: "budget-refund" },
    });
    const perJudgment: number = probe.body.data.estimatedCostUsd;
    const afterProbe = (await org.api("GET", "/v1/organization")).body.data.spend;
    expect(afterProbe.costUsd).toBe(perJudgment);

    const budget = Number((perJudgment * 6).toFixed(6));
    await org.api("PUT", "/v1/organization/settings", { monthlyBudgetUsd: budget });
    const body = { callIds, metrics: [{ id: "budget-refund" }, { id: "budget-polite" }, { id: "budget-sorry" }] };
    // Not refused: each judgment is expected to cost at least a little, but a job's items
    // are judged until what is left is spent.
    const created = await org.api("POST", "/v1/metric/collection-jobs", { ...body, callIds: callIds.slice(0, 1) });
    expect(created.status).toBe(201);
    expect(created.body.data.maxCostUsd).toBeCloseTo(budget - perJudgment, 6);
    await waitForJobEnd(org.api, created.body.data.id);

    // Expected to cost more than is left: refused, nothing created.
    const refused = await org.api("POST", "/v1/metric/collection-jobs", body);
    expect(refused.status).toBe(402);
    expect(refused.body.error.code).toBe("budget_exceeded");
    expect(refused.body.error.message).toContain(`monthly LLM budget of $${budget}`);

    // A bigger budget: the large job runs until it has spent what is left, under concurrent evaluators.
    await org.api("PUT", "/v1/organization/settings", { monthlyBudgetUsd: Number((perJudgment * 12).toFixed(6)) });
    const spentBefore = (await org.api("GET", "/v1/organization")).body.data.spend.costUsd;
    const large = await org.api("POST", "/v1/metric/collection-jobs", { ...body, callIds: callIds.slice(0, 4) });
    expect(large.status).toBe(201);
    const job = await waitForJobEnd(org.api, large.body.data.id);
    const values = await jobValues(org.api, job.id);
    const stopped = values.filter((value) => value.captureStatus === "ERROR");
    expect(stopped.length).toBeGreaterThan(0);
    expect(stopped.every((value) => value.errorMessage.includes("cost cap"))).toBe(true);

    // Exactly once: the month's spend is the probe plus each job's recorded cost.
    const first = (await org.api("GET", `/v1/metric/collection-jobs/${created.body.data.id}`)).body.data;
    const spend = (await org.api("GET", "/v1/organization")).body.data.spend;
    expect(spend.costUsd).toBeCloseTo(perJudgment + (first.estimatedCostUsd ?? 0) + (job.estimatedCostUsd ?? 0), 6);
    expect(spend.costUsd).toBeGreaterThan(spentBefore);

    // Nothing left: the playground is refused too.
    await org.api("PUT", "/v1/organization/settings", { monthlyBudgetUsd: spend.costUsd });
    const playground = await org.api("POST", "/v1/metric/playground", {
      callId: callIds[0],
      metric: { id: "budget-refund" },
    });
    expect(playground.status).toBe(402);
    expect((await org.api("GET", "/v1/organization")).body.data.spend.remainingBudgetUsd).toBe(0);
  });
});
