/** The playground: definitions tried on one call, synchronously, nothing stored; alone, or in both judge modes side by side. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_JUDGE_MODEL } from "../../shared/config.ts";
import { keys } from "../../shared/keys.ts";
import { rateLimitStore } from "../../shared/store/llm-rate-limit.ts";
import { table } from "../../shared/store/table.ts";
import { createCalls, createMetrics, llmMetric } from "../support/fixtures.ts";
import { startTestStack, type TestStack } from "../support/stack.ts";

const refundAsked = llmMetric("refund-asked", "BOOLEAN", 'Did the customer ask for a "refund"?');
const empathy = llmMetric("empathy", "SCALE", 'How empathetic was the agent ("sorry")?', { scaleMin: 1, scaleMax: 5 });

describe("metric playground", () => {
  let stack: TestStack;
  let callId: string;
  beforeAll(async () => {
    // A short deadline, so a slow model shows the playground's answer without waiting 25 s;
    // long enough for a run that meets a 429 while the other test files load the machine.
    stack = await startTestStack({ env: { PLAYGROUND_DEADLINE_MS: "4000" } });
    [callId] = (await createCalls(stack.api, 1)) as [string];
  });
  afterAll(() => stack?.stop());

  it("evaluates a saved or an inline definition synchronously and stores nothing", async () => {
    const [saved] = await createMetrics(stack.api, [refundAsked]);
    const bySlug = await stack.api("POST", "/v1/metric/playground", { callId, metric: { id: "refund-asked" } });
    expect(bySlug.status).toBe(200);
    expect(bySlug.body.data).toMatchObject({
      callId,
      metricDefinitionId: saved!.id,
      metricVersion: 1,
      captureStatus: "SUCCESS",
      value: true,
      usage: { outputTokens: expect.any(Number) },
      estimatedCostUsd: expect.any(Number),
    });
    const inline = await stack.api("POST", "/v1/metric/playground", { callId, metric: empathy });
    expect(inline.status).toBe(200);
    expect(inline.body.data).toMatchObject({ metricDefinitionId: "inline", captureStatus: "SUCCESS", value: 3 });
    const builtIn = await stack.api("POST", "/v1/metric/playground", {
      callId,
      metric: {
        slug: "turns",
        name: "Turns",
        calculationType: "BUILT_IN",
        outputType: "COUNT",
        builtIn: { kind: "TURN_COUNT" },
      },
    });
    expect(builtIn.body.data).toMatchObject({ captureStatus: "SUCCESS", value: 4 });
    const stored = await stack.api("GET", `/v1/call/${callId}/metrics`);
    expect(stored.body.data).toEqual([]);
  });

  it("judges a transcript sent inline (messages, one message, or a whole call) and stores no call", async () => {
    await createMetrics(stack.api, [{ ...refundAsked, slug: "inline-refund" }]);
    const callsBefore = (await stack.api("GET", "/v1/call?limit=100")).body.data.length;
    const run = (input: object, metric: object = { id: "inline-refund" }) =>
      stack.api("POST", "/v1/metric/playground", { ...input, metric });
    const turns = {
      slug: "t",
      name: "T",
      calculationType: "BUILT_IN",
      outputType: "COUNT",
      builtIn: { kind: "TURN_COUNT" },
    };

    const messages = [
      { role: "CUSTOMER", text: "My order arrived broken. I want a refund." },
      { role: "AGENT", text: "I'm sorry to hear that." },
      { role: "CUSTOMER", text: "Thanks." },
    ];
    const byMessages = await run({ messages });
    expect(byMessages.status).toBe(200);
    expect(byMessages.body.data).toMatchObject({ callId: "inline", captureStatus: "SUCCESS", value: true });
    expect((await run({ messages }, turns)).body.data).toMatchObject({ value: 3 });
    expect((await run({ message: "Can I get a refund?" })).body.data).toMatchObject({ value: true });
    expect((await run({ message: "When do you open?" })).body.data).toMatchObject({ value: false });
    const call = {
      agentId: "agent-inline",
      startedAt: "2026-12-01T10:00:00Z",
      transcript: [
        { role: "AGENT", text: "Hello, how can I help?", startOffsetMs: 0, endOffsetMs: 2000 },
        { role: "CUSTOMER", text: "A refund, please.", startOffsetMs: 2500, endOffsetMs: 4000 },
      ],
    };
    expect((await run({ call })).body.data).toMatchObject({ callId: "inline", value: true });
    const judged = await stack.api("POST", "/v1/metric/playground/judge-modes", {
      messages,
      metrics: [{ id: "inline-refund" }],
    });
    expect(judged.status).toBe(200);
    expect(judged.body.data.metrics[0]).toMatchObject({ sameAnswer: true, isolated: { value: true } });

    for (const bad of [{}, { callId, message: "refund?" }, { messages: [] }, { call: { agentId: "a" } }]) {
      const refused = await run(bad);
      expect(refused.status).toBe(400);
    }
    expect((await run({ message: "" })).body.error.details).toEqual([
      expect.objectContaining({ field: "body.message" }),
    ]);
    expect((await stack.api("GET", "/v1/call?limit=100")).body.data).toHaveLength(callsBefore);
  });

  it("answers 400, 404 and 503 (with Retry-After) for what it cannot evaluate", async () => {
    const invalid = await stack.api("POST", "/v1/metric/playground", {
      callId,
      metric: { slug: "x", name: "x", calculationType: "LLM_JUDGE", outputType: "SCALE", llmPrompt: "?" },
    });
    expect(invalid.status).toBe(400);
    expect(invalid.body.error.details).toContainEqual(
      expect.objectContaining({ field: "body.metric.scaleMin", message: expect.stringMatching(/required/) }),
    );
    const noCall = await stack.api("POST", "/v1/metric/playground", { callId: "nope", metric: refundAsked });
    expect(noCall.status).toBe(404);
    const noMetric = await stack.api("POST", "/v1/metric/playground", { callId, metric: { id: "nope" } });
    expect(noMetric.status).toBe(404);
    stack.anthropic.configure({ fault: () => "rate_limit", retryAfterSeconds: 9 });
    const limited = await stack.api("POST", "/v1/metric/playground", { callId, metric: refundAsked });
    stack.anthropic.configure({ fault: undefined });
    expect(limited.status).toBe(503);
    expect(limited.headers.get("retry-after")).toBe("9");
    expect(limited.body.error.code).toBe("llm_unavailable");
    // The shared limiter holds every caller to that retry-after: the next run is refused unasked.
    const before = stack.anthropic.requests().length;
    const again = await stack.api("POST", "/v1/metric/playground", { callId, metric: refundAsked });
    expect(again.status).toBe(503);
    expect(stack.anthropic.requests()).toHaveLength(before);
    await table.delete({ Key: keys.llmRateLimit(DEFAULT_JUDGE_MODEL) });
  });

  it("answers 504 with what to do when the model is slower than the API's 30-second limit allows", async () => {
    stack.anthropic.configure({ latencyMs: 5_000 });
    try {
      const slow = await stack.api("POST", "/v1/metric/playground", { callId, metric: refundAsked });
      expect(slow.status).toBe(504);
      expect(slow.body.error.code).toBe("llm_timeout");
      expect(slow.body.error.message).toMatch(/4 s.*run them as a job/);
      const modes = await stack.api("POST", "/v1/metric/playground/judge-modes", {
        callId,
        metrics: [refundAsked, empathy],
      });
      expect(modes.status).toBe(504);
    } finally {
      stack.anthropic.configure({ latencyMs: 0 });
    }
    // Several metrics in both modes fit the deadline: after the first question writes the
    // transcript to the cache, the rest are asked at once.
    stack.anthropic.configure({ latencyMs: 600 });
    try {
      const five = [0, 1, 2, 3].map((i) => llmMetric(`quick-${i}`, "BOOLEAN", `Was "word${i}" said?`));
      const modes = await stack.api("POST", "/v1/metric/playground/judge-modes", { callId, metrics: five });
      expect(modes.status).toBe(200);
    } finally {
      stack.anthropic.configure({ latencyMs: 0 });
    }
  });

  it("judges a call with several metrics in both judge modes, side by side", async () => {
    const quote = llmMetric("quote", "TEXT", 'Quote what was said about the "refund".', { isolated: true });
    const turns = {
      slug: "turns",
      name: "Turns",
      calculationType: "BUILT_IN",
      outputType: "COUNT",
      builtIn: { kind: "TURN_COUNT" },
    };
    stack.anthropic.reset();
    const compared = await stack.api("POST", "/v1/metric/playground/judge-modes", {
      callId,
      metrics: [{ id: "refund-asked" }, empathy, quote, turns],
    });
    expect(compared.status).toBe(200);
    const { metrics, usage, estimatedCostUsd } = compared.body.data;
    expect(metrics.map((m: any) => [m.slug, m.isolated.value, m.grouped.value, m.sameAnswer])).toEqual([
      ["refund-asked", true, true, true],
      ["empathy", 3, 3, true],
      ["quote", "I need a refund, sorry to bother you.", "I need a refund, sorry to bother you.", true],
      ["turns", 4, 4, true],
    ]);
    // Isolated: three LLM requests; grouped (asked at the same time): refund and empathy together, the quote alone.
    expect(
      stack.anthropic
        .requests()
        .map((r) => r.questions)
        .sort(),
    ).toEqual([1, 1, 1, 1, 2]);
    expect(usage.grouped.inputTokens + usage.grouped.cacheReadInputTokens).toBeGreaterThan(0);
    expect(estimatedCostUsd.grouped).toBeGreaterThan(0);
    expect(estimatedCostUsd.isolated).toBeGreaterThan(0);
    const stored = await stack.api("GET", `/v1/call/${callId}/metrics`);
    expect(stored.body.data).toEqual([]);

    const bad = await stack.api("POST", "/v1/metric/playground/judge-modes", { callId, metrics: [{ id: "nope" }] });
    expect(bad.status).toBe(404);
    const invalid = await stack.api("POST", "/v1/metric/playground/judge-modes", {
      callId,
      metrics: [refundAsked, { slug: "x" }],
    });
    expect(invalid.status).toBe(400);
    expect(JSON.stringify(invalid.body.error.details)).toMatch(/body\.metrics\.1/);
  });

  it("counts against the shared LLM limiter: with the account's schedule taken by jobs, 503 before any model call", async () => {
    const model = DEFAULT_JUDGE_MODEL;
    // Jobs hold the account's schedule for the next minute (as the evaluators' reservations would).
    await rateLimitStore.setLimits(model, { requestsPerMinute: 600 });
    await rateLimitStore.pauseUntil(model, Date.now() + 60_000);
    try {
      const before = stack.anthropic.requests().length;
      const single = await stack.api("POST", "/v1/metric/playground", { callId, metric: refundAsked });
      expect(single.status).toBe(503);
      expect(Number(single.headers.get("retry-after"))).toBeGreaterThanOrEqual(30);
      expect(single.body.error.message).toMatch(/rate limits are taken by running jobs/);
      const modes = await stack.api("POST", "/v1/metric/playground/judge-modes", {
        callId,
        metrics: [refundAsked, empathy],
      });
      expect(modes.status).toBe(503);
      expect(stack.anthropic.requests()).toHaveLength(before);
    } finally {
      await table.delete({ Key: keys.llmRateLimit(model) });
    }
    // With room again, the run is admitted and reserves its call like a job's.
    const admitted = await stack.api("POST", "/v1/metric/playground", { callId, metric: refundAsked });
    expect(admitted.status).toBe(200);
  });
});
