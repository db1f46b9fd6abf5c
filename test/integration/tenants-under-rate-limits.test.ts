/**
 * Two organizations share the evaluators under the account's limits, on the local stack with
 * the fake Anthropic server enforcing them: a small job finishes beside another
 * organization's large one in about the time it takes alone (fair queue, fair share of the
 * limiter), and the large one still completes with few 429s.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCalls, createMetrics, llmMetric } from "../support/fixtures.ts";
import { runJobToEnd, startTestStack, type TestStack, waitForJobEnd } from "../support/stack.ts";

describe("two organizations under the account's limits", { timeout: 180_000 }, () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({
      anthropic: { rateLimits: { requestsPerMinute: 600 }, latencyMs: 200 },
    });
  });
  afterAll(() => stack?.stop());

  it("finishes a small job beside another organization's large one in about its time alone", async () => {
    const small = await stack.newOrganization("Small");
    const smallMetrics = await createMetrics(
      small.api,
      Array.from({ length: 5 }, (_, i) => llmMetric(`small-${i}`, "BOOLEAN", `Was "refund" said (${i})?`)),
    );
    const smallCalls = await createCalls(small.api, 2);
    const largeMetrics = await createMetrics(
      stack.api,
      Array.from({ length: 5 }, (_, i) => llmMetric(`large-${i}`, "BOOLEAN", `Was "refund" said (${i})?`)),
    );
    const largeCalls = await createCalls(stack.api, 80);

    // Alone (its answers also tell the limiter the account's limits).
    await runJobToEnd(small.api, smallCalls, smallMetrics);
    let started = Date.now();
    expect(await runJobToEnd(small.api, smallCalls, smallMetrics)).toMatchObject({ status: "COMPLETED" });
    const aloneMs = Date.now() - started;

    // 400 items at 600 requests a minute: about 42 s of the account's limits.
    const large = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds: largeCalls,
      metrics: largeMetrics.map((m) => ({ id: m.id })),
    });
    expect(large.status).toBe(201);
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    started = Date.now();
    const beside = await runJobToEnd(small.api, smallCalls, smallMetrics);
    const besideMs = Date.now() - started;
    expect(beside).toMatchObject({ status: "COMPLETED", completedItems: 10, failedItems: 0 });
    const { body } = await stack.api("GET", `/v1/metric/collection-jobs/${large.body.data.id}`);
    // The large job was still running: the small one did not wait for it…
    expect(body.data.status).toBe("PROCESSING");
    // …and took about as long as alone (the bound is 3×; a loaded machine gets 2 s more).
    expect(besideMs).toBeLessThanOrEqual(3 * aloneMs + 2_000);

    const largeJob = await waitForJobEnd(stack.api, large.body.data.id, 120_000);
    expect(largeJob).toMatchObject({ status: "COMPLETED", completedItems: 400, failedItems: 0 });
    const limited = stack.anthropic.requests().filter((request) => request.status === 429);
    expect(limited.length).toBeLessThanOrEqual(0.05 * stack.anthropic.requests().length);
  });
});
