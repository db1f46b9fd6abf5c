/**
 * A job's cost cap, reached mid-job while several evaluator invocations run at once: its
 * model calls stop, its remaining LLM items end as ERROR saying why, built-ins still run,
 * and the job finishes with every item counted once.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  builtInMetric,
  createCalls,
  createMetrics,
  expectCountsMatchValues,
  jobValues,
  llmMetric,
} from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitForJobEnd } from "../support/stack.ts";

describe("a job's cost cap", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({ anthropic: { latencyMs: 300 } });
  });
  afterAll(() => stack?.stop());

  it("stops the job's model calls once its cost reaches the cap, under concurrent evaluators", async () => {
    const callIds = await createCalls(stack.api, 15);
    const metrics = await createMetrics(stack.api, [
      llmMetric("cap-refund", "BOOLEAN", 'Did the customer say "refund"?'),
      llmMetric("cap-polite", "BOOLEAN", "Was the agent polite?"),
      llmMetric("cap-sorry", "BOOLEAN", 'Did anyone say "sorry"?'),
      builtInMetric("cap-turns", { kind: "TURN_COUNT" }, "COUNT"),
    ]);
    // What one judgment costs on this call, to set a cap of about four of them.
    const probe = await stack.api("POST", "/v1/metric/playground", {
      callId: callIds[0],
      metric: { id: "cap-refund" },
    });
    const perJudgment: number = probe.body.data.estimatedCostUsd;
    expect(perJudgment).toBeGreaterThan(0);
    const maxCostUsd = Number((perJudgment * 4).toFixed(6));

    const created = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds,
      metrics: metrics.map(({ id }) => ({ id })),
      maxCostUsd,
    });
    expect(created.status).toBe(201);
    expect(created.body.data.maxCostUsd).toBe(maxCostUsd);
    const job = await waitForJobEnd(stack.api, created.body.data.id);
    expect(job.completedItems + job.failedItems).toBe(60);
    await expectCountsMatchValues(stack.api, job);

    const values = await jobValues(stack.api, job.id);
    const judged = values.filter((value) => value.slug !== "cap-turns" && value.captureStatus === "SUCCESS");
    const stopped = values.filter((value) => value.captureStatus === "ERROR");
    // Every built-in ran; the LLM items stopped at the cap (a call is made only while its
    // expected cost fits: invocations running at once may overshoot by what they have under way).
    expect(values.filter((value) => value.slug === "cap-turns" && value.captureStatus === "SUCCESS")).toHaveLength(15);
    expect(judged.length).toBeGreaterThanOrEqual(1);
    expect(judged.length).toBeLessThanOrEqual(8);
    expect(stopped.length).toBe(45 - judged.length);
    expect(stopped.every((value) => value.errorMessage.includes(`cost cap of $${maxCostUsd}`))).toBe(true);
    expect(job.errorMessage).toContain("cost cap");
    expect(job.estimatedCostUsd).toBeLessThanOrEqual(maxCostUsd * 2);
    // The model was asked no more than the judged items (and the probe).
    const asked = stack.anthropic.requests().filter((request) => request.status === 200);
    expect(asked.length).toBeLessThanOrEqual(judged.length + 1);
  });

  it("takes the organization's cap for every job, which a job's own may only lower", async () => {
    const org = await stack.newOrganization("Capped");
    await org.api("PUT", "/v1/organization/settings", { maxJobCostUsd: 0.5 });
    const [callId] = await createCalls(org.api, 1);
    await createMetrics(org.api, [builtInMetric("cap-org-turns", { kind: "TURN_COUNT" }, "COUNT")]);
    const body = { callIds: [callId], metrics: [{ id: "cap-org-turns" }] };
    const byDefault = await org.api("POST", "/v1/metric/collection-jobs", body);
    expect(byDefault.body.data.maxCostUsd).toBe(0.5);
    const lower = await org.api("POST", "/v1/metric/collection-jobs", { ...body, maxCostUsd: 0.1 });
    expect(lower.body.data.maxCostUsd).toBe(0.1);
    const higher = await org.api("POST", "/v1/metric/collection-jobs", { ...body, maxCostUsd: 5 });
    expect(higher.body.data.maxCostUsd).toBe(0.5);
  });
});
