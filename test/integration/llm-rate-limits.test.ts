/**
 * The evaluators under the Anthropic account's rate limits, on the local stack with the fake
 * server enforcing them: the shared limiter learns the limits from the answers' headers and
 * keeps every evaluator's calls under them, so a job on an account someone else has just
 * used up meets few 429s, and none of its items is given up; a job larger than the limits let
 * through at once waits its turns, each batch sent back about once; a limit lowered mid-job
 * is kept to from the next answers on.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { SharedRateLimiter } from "../../shared/llm/rate-limiter.ts";
import { modelDemand } from "../../shared/pipeline/evaluators.ts";
import { getCall } from "../../shared/store/calls.ts";
import { rateLimitStore } from "../../shared/store/llm-rate-limit.ts";
import { getMetric } from "../../shared/store/metrics.ts";
import { createCalls, createMetrics, llmMetric } from "../support/fixtures.ts";
import { runJobToEnd, startTestStack, type TestStack, waitForJobEnd } from "../support/stack.ts";

const REQUESTS_PER_MINUTE = 300;

const runJob = (stack: TestStack, callIds: string[], metrics: { id: string }[]) =>
  runJobToEnd(stack.api, callIds, metrics, 120_000);

/** Another user of the same key takes every request the account has left this minute. */
async function useUpTheAccount(stack: TestStack) {
  for (let sent = 0; sent < REQUESTS_PER_MINUTE * 2; sent++) {
    const response = await fetch(`${stack.anthropic.url}/v1/messages`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": "another-user", "anthropic-version": "2023-06-01" },
      body: JSON.stringify({
        model: "claude-sonnet-5-5",
        max_tokens: 64,
        messages: [{ role: "user", content: "Hello" }],
      }),
    });
    await response.arrayBuffer();
    if (response.status === 429) return;
  }
  throw new Error("the fake server never answered 429");
}

/** Five judged metrics, after one small job whose answers tell the limiter the account's limits. */
async function warmedUpMetrics(stack: TestStack, tag: string) {
  const metrics = await createMetrics(
    stack.api,
    Array.from({ length: 5 }, (_, i) => llmMetric(`${tag}-${i}`, "BOOLEAN", `Was "refund" said (${i})?`)),
  );
  const [warmCall] = await createCalls(stack.api, 1);
  expect(await runJob(stack, [warmCall!], metrics.slice(0, 1))).toMatchObject({ status: "COMPLETED" });
  return metrics;
}

describe("model calls under the account's rate limits", { timeout: 180_000 }, () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({
      anthropic: { rateLimits: { requestsPerMinute: REQUESTS_PER_MINUTE }, latencyMs: 50 },
    });
  });
  afterAll(() => stack?.stop());

  it("compares each answer with its own request's estimate: the calibration the evaluators note", async () => {
    stack.anthropic.reset();
    const [metric] = await createMetrics(stack.api, [llmMetric("calibration", "BOOLEAN", 'Was "refund" said?')]);
    const [callId] = await createCalls(stack.api, 1);
    expect(await runJob(stack, [callId!], [metric!])).toMatchObject({ status: "COMPLETED" });

    const [request] = stack.anthropic.requests();
    const definition = await getMetric(stack.orgId, metric!.id);
    const call = await getCall(stack.orgId, callId!);
    const estimate = modelDemand([definition!], call!, false)?.demand.inputTokens ?? 0;
    const reported = (request?.usage?.input_tokens ?? 0) + (request?.usage?.cache_creation_input_tokens ?? 0);
    const state = await rateLimitStore.read(request?.model ?? "");
    expect(state?.calibration?.inputCorrection).toBeCloseTo(reported / estimate, 6);
  });

  it("keeps a job on a used-up account to a few 429s, every item judged", async () => {
    const metrics = await warmedUpMetrics(stack, "limited");

    await useUpTheAccount(stack);
    const before = stack.anthropic.requests().length;
    const callIds = await createCalls(stack.api, 8);
    const job = await runJob(stack, callIds, metrics);
    expect(job).toMatchObject({ status: "COMPLETED", completedItems: 40, failedItems: 0 });

    const served = stack.anthropic.requests().slice(before);
    const limited = served.filter((request) => request.status === 429).length;
    // Unscheduled, the evaluators' calls meet about two 429s for every three requests.
    expect(limited / served.length).toBeLessThanOrEqual(0.05);
    expect(served.filter((request) => request.status === 200)).toHaveLength(40);
  });

  it("sends a backlog back about once per item: each deferred batch returns for its turn", async () => {
    const metrics = await warmedUpMetrics(stack, "backlog");
    // 80 requests at 300 a minute: 16 s of the account's limits, taken by the evaluators at once.
    const admissions = vi.spyOn(SharedRateLimiter.prototype, "admit");
    const callIds = await createCalls(stack.api, 16);
    const job = await runJob(stack, callIds, metrics);
    expect(job).toMatchObject({ status: "COMPLETED", completedItems: 80, failedItems: 0 });
    let sentBack = 0;
    const returns = { withTurn: 0, admitted: 0 };
    for (const [index, [, demand, , turnAt]] of admissions.mock.calls.entries()) {
      const admission = await admissions.mock.results[index]?.value;
      if (!admission.admitted) sentBack += demand.requests;
      if (turnAt === undefined) continue;
      returns.withTurn++;
      if (admission.admitted) returns.admitted++;
    }
    admissions.mockRestore();
    expect(sentBack).toBeGreaterThan(0);
    expect(sentBack / 80).toBeLessThanOrEqual(1.5);
    // The deferred came back for their turns, and found the schedule free for them.
    expect(returns.withTurn).toBeGreaterThan(0);
    expect(returns.admitted / returns.withTurn).toBeGreaterThanOrEqual(0.8);
  });

  it("keeps to a limit the account lowers mid-job, from the next answers on", async () => {
    const metrics = await warmedUpMetrics(stack, "lowered");
    const callIds = await createCalls(stack.api, 12);
    const before = stack.anthropic.requests().length;
    const created = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds,
      metrics: metrics.map((m) => ({ id: m.id })),
    });
    expect(created.status).toBe(201);
    // 60 items at 300 a minute would take 12 s; 5 s in, the account's limit drops to 120 a minute.
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    const loweredAt = Date.now();
    stack.anthropic.configure({ rateLimits: { requestsPerMinute: 120 } });
    const job = await waitForJobEnd(stack.api, created.body.data.id, 120_000);
    expect(job).toMatchObject({ status: "COMPLETED", completedItems: 60, failedItems: 0 });
    stack.anthropic.configure({ rateLimits: { requestsPerMinute: REQUESTS_PER_MINUTE } });

    const served = stack.anthropic.requests().slice(before);
    expect(served.filter((request) => request.status === 200)).toHaveLength(60);
    // The requests in flight when it dropped may meet a 429; after them, the new pace holds.
    expect(served.filter((request) => request.status === 429).length).toBeLessThanOrEqual(6);
    const settled = served.filter((request) => request.status === 200 && request.receivedAt > loweredAt + 5_000);
    expect(settled.length).toBeGreaterThan(10);
    const times = settled.map((request) => request.receivedAt);
    const spanSeconds = (Math.max(...times) - Math.min(...times)) / 1000;
    expect((settled.length - 1) / spanSeconds).toBeLessThanOrEqual((120 / 60) * 1.15);
  });
});
