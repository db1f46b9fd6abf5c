/**
 * LLM-judged metrics through whole jobs on the local engines, with the real Anthropic SDK
 * talking to the fake Anthropic server: typed values, caching, rate-limit storms, a
 * rejected key.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { billedUsage, createCalls, createMetrics, jobValues, llmMetric } from "../support/fixtures.ts";
import { runJobToEnd, startTestStack, type TestStack } from "../support/stack.ts";

const judged = llmMetric;

/** One definition per output type; sample calls say "refund" once and "sorry" twice. */
const everyType = [
  judged("refund-asked", "BOOLEAN", 'Did the customer ask for a "refund"?', { booleanTrueLabel: "yes" }),
  judged("sorry-occurrences", "NUMERIC", 'How often is "sorry" said?'),
  judged("empathy", "SCALE", 'How empathetic was the agent ("sorry")?', {
    scaleMin: 1,
    scaleMax: 5,
    scaleLabels: { "1": "cold", "5": "warm" },
  }),
  judged("reason", "CLASSIFICATION", "Why did the customer call?", {
    classificationOptions: ["billing", "refund", "technical"],
    maxClassifications: 2,
  }),
  judged("refund-quote", "TEXT", 'Quote what was said about the "refund".'),
  judged("sorry-turns", "COUNT", 'In how many turns is "sorry" said?'),
  judged("first-sorry", "OFFSET", 'Point at the first "sorry".'),
  judged("mortgage", "BOOLEAN", 'Only if the transcript mentions "mortgage": was the "rate" explained?'),
];

const runJob = (stack: TestStack, callIds: string[], metrics: { id: string }[]) =>
  runJobToEnd(stack.api, callIds, metrics, 90_000);

describe("LLM-judged metrics on the local engines", { timeout: 120_000 }, () => {
  let stack: TestStack;
  beforeAll(async () => {
    // Request counts are asserted exactly: the test stack's work queue never redelivers a
    // batch that a busy machine made slow (see crashTestQueues).
    stack = await startTestStack();
  });
  afterAll(() => stack?.stop());
  beforeEach(() => {
    stack.anthropic.reset();
    stack.anthropic.configure({ fault: undefined, retryAfterSeconds: 1 });
  });

  it("produces typed values, segments, usage and cost for every output type", async () => {
    const callIds = await createCalls(stack.api, 3);
    const [emptyCall] = await createCalls(stack.api, 1, { transcript: [] });
    const metrics = await createMetrics(stack.api, everyType);
    const job = await runJob(stack, [...callIds, emptyCall!], metrics);
    expect(job).toMatchObject({ status: "COMPLETED", totalItems: 32, completedItems: 32, failedItems: 0 });

    const values = await jobValues(stack.api, job.id);
    expect(values).toHaveLength(32);
    const of = (slug: string, callId: string) => values.find((v) => v.slug === slug && v.callId === callId);
    const callId = callIds[0]!;
    expect(of("refund-asked", callId)).toMatchObject({
      captureStatus: "SUCCESS",
      value: true,
      context: "SEGMENT",
      segment: { id: "s1", text: "I need a refund, sorry to bother you.", startOffsetMs: 3500, endOffsetMs: 7000 },
      model: "claude-sonnet-5-5",
    });
    expect(of("sorry-occurrences", callId)).toMatchObject({ captureStatus: "SUCCESS", value: 2 });
    expect(of("empathy", callId)).toMatchObject({ captureStatus: "SUCCESS", value: 3 });
    expect(of("reason", callId)).toMatchObject({ captureStatus: "SUCCESS", value: ["refund"] });
    expect(of("refund-quote", callId)).toMatchObject({ value: "I need a refund, sorry to bother you." });
    expect(of("sorry-turns", callId)).toMatchObject({
      value: 2,
      context: "SEGMENT_RANGE",
      fromSegment: { id: "s1" },
      toSegment: { id: "s2" },
    });
    expect(of("first-sorry", callId)).toMatchObject({ value: 3500, context: "SEGMENT", segment: { id: "s1" } });
    expect(of("mortgage", callId)).toMatchObject({ captureStatus: "NOT_APPLICABLE" });
    for (const value of values.filter((v) => v.callId === emptyCall)) {
      expect(value).toMatchObject({ captureStatus: "DATA_MISSING" });
      expect(value.usage).toBeUndefined();
    }
    for (const value of values.filter((v) => v.callId !== emptyCall)) {
      expect(value.valueReasoning).toEqual(expect.any(String));
      expect(value.confidence).toBeGreaterThanOrEqual(0);
      expect(value.usage.inputTokens + value.usage.cacheReadInputTokens).toBeGreaterThan(0);
    }

    // The job sums every value's usage and cost; the fake server billed exactly that.
    const sum = (field: string) => values.reduce((total, v) => total + (v.usage?.[field] ?? 0), 0);
    expect(job.usage).toEqual({
      inputTokens: sum("inputTokens"),
      outputTokens: sum("outputTokens"),
      cacheCreationInputTokens: sum("cacheCreationInputTokens"),
      cacheReadInputTokens: sum("cacheReadInputTokens"),
      thinkingTokens: sum("thinkingTokens"),
    });
    const served = stack.anthropic.requests();
    expect(served).toHaveLength(24);
    expect(job.usage.outputTokens).toBe(served.reduce((total, r) => total + (r.usage?.output_tokens ?? 0), 0));
    const cost = values.reduce((total, v) => total + Math.round((v.estimatedCostUsd ?? 0) * 1e6), 0) / 1e6;
    expect(job.estimatedCostUsd).toBeCloseTo(cost, 9);
    expect(job.estimatedCostUsd).toBeGreaterThan(0);
  });

  it("reads the transcript from the prompt cache for at least 4 of 5 metrics of each call", async () => {
    const callIds = await createCalls(stack.api, 10);
    const metrics = await createMetrics(
      stack.api,
      everyType.slice(0, 5).map((m) => ({ ...m, slug: `${m.slug}-cache` })),
    );
    const job = await runJob(stack, callIds, metrics);
    expect(job).toMatchObject({ status: "COMPLETED", completedItems: 50 });
    const byCall = Map.groupBy(stack.anthropic.requests(), (r) => r.prefixHash);
    expect(byCall.size).toBe(10);
    for (const requests of byCall.values()) {
      expect(requests).toHaveLength(5);
      const reads = requests.filter((r) => (r.usage?.cache_read_input_tokens ?? 0) > 0);
      expect(reads.length).toBeGreaterThanOrEqual(4);
    }
    expect(job.usage.cacheReadInputTokens).toBeGreaterThan(job.usage.cacheCreationInputTokens);
  });

  it("corrects a malformed answer once, and records ERROR when it stays malformed", async () => {
    const callIds = await createCalls(stack.api, 2);
    const [good, bad] = await createMetrics(stack.api, [
      judged("malformed-once", "BOOLEAN", 'Was "refund" said?'),
      judged("malformed-always", "COUNT", 'How many "sorry"?'),
    ]);
    // Every first answer is malformed; the corrective retry gets a valid one.
    stack.anthropic.configure({ fault: (request) => (request.isCorrection ? undefined : "malformed") });
    const job = await runJob(stack, callIds, [good!]);
    expect(job).toMatchObject({ status: "COMPLETED", completedItems: 2, failedItems: 0 });
    expect(stack.anthropic.requests().filter((r) => r.isCorrection)).toHaveLength(2);

    stack.anthropic.reset();
    stack.anthropic.configure({ fault: () => "malformed_always" });
    const failing = await runJob(stack, callIds, [bad!]);
    expect(failing).toMatchObject({ status: "FAILED", completedItems: 0, failedItems: 2 });
    const values = await jobValues(stack.api, failing.id);
    for (const value of values) {
      expect(value.captureStatus).toBe("ERROR");
      expect(value.errorMessage).toMatch(/invalid twice/);
      expect(value.usage.outputTokens).toBeGreaterThan(0);
    }
    expect(stack.anthropic.requests()).toHaveLength(4);
  });

  it("counts every billed attempt: an invalid answer whose corrective retry was rate-limited", async () => {
    const callIds = await createCalls(stack.api, 2);
    const [metric] = await createMetrics(stack.api, [judged("billed-attempts", "BOOLEAN", 'Was "refund" said?')]);
    // Each item's first answer is malformed and its correction rate-limited: the item runs
    // again, and the malformed answer it paid for belongs to the job's usage.
    stack.anthropic.configure({
      fault: (r) => (r.attempt === 1 ? (r.isCorrection ? "rate_limit" : "malformed") : undefined),
    });
    const job = await runJob(stack, callIds, [metric!]);
    expect(job).toMatchObject({ status: "COMPLETED", completedItems: 2, failedItems: 0 });
    const served = stack.anthropic.requests();
    for (const attempts of Map.groupBy(served, (r) => r.itemHash).values()) {
      expect(attempts.map((a) => a.status)).toEqual([200, 429, 200]);
    }
    expect(job.usage).toEqual(billedUsage(served));
    const values = await jobValues(stack.api, job.id);
    const recordedOutput = values.reduce((total, v) => total + v.usage.outputTokens, 0);
    expect(job.usage.outputTokens).toBeGreaterThan(recordedOutput);
  });

  it("takes few-shot examples on a definition, checks their answers, and shows them to the judge", async () => {
    const [callId] = await createCalls(stack.api, 1);
    const examples = [{ excerpt: "CUSTOMER: I want my money back.", value: true, reasoning: "A refund is asked for." }];
    const wrong = await stack.api("POST", "/v1/metric/definitions", {
      ...judged("examples-wrong", "BOOLEAN", 'Was "refund" said?'),
      examples: [{ excerpt: "CUSTOMER: Hi", value: "yes" }],
    });
    expect(wrong.status).toBe(400);
    expect(JSON.stringify(wrong.body)).toMatch(/examples\.0\.value.*not a valid value/);

    const [plain, taught]: any[] = await createMetrics(stack.api, [
      judged("examples-plain", "BOOLEAN", 'Was "refund" said?'),
      { ...judged("examples-taught", "BOOLEAN", 'Was "refund" said?'), examples },
    ]);
    expect(taught.examples).toEqual(examples);
    await runJob(stack, [callId!], [plain]);
    const job = await runJob(stack, [callId!], [taught]);
    expect(job).toMatchObject({ status: "COMPLETED", completedItems: 1 });
    const [value] = await jobValues(stack.api, job.id);
    expect(value.value).toBe(true);
    // The taught metric reads the transcript the plain one cached, and caches its examples after it.
    const [first, second] = stack.anthropic.requests();
    expect(second?.usage?.cache_read_input_tokens).toBe(first?.usage?.cache_creation_input_tokens);
    expect(second?.usage?.cache_creation_input_tokens).toBeGreaterThan(0);
  });

  it("survives a 429 storm: every first attempt rate-limited, job COMPLETED, nothing lost or double-counted", async () => {
    const callIds = await createCalls(stack.api, 5);
    const metrics = await createMetrics(
      stack.api,
      everyType.slice(0, 4).map((m) => ({ ...m, slug: `${m.slug}-storm` })),
    );
    stack.anthropic.configure({ fault: (request) => (request.attempt === 1 ? "rate_limit" : undefined) });
    const job = await runJob(stack, callIds, metrics);
    expect(job).toMatchObject({ status: "COMPLETED", totalItems: 20, completedItems: 20, failedItems: 0 });
    const values = await jobValues(stack.api, job.id);
    expect(values).toHaveLength(20);
    expect(values.every((v) => v.captureStatus === "SUCCESS")).toBe(true);
    const requests = stack.anthropic.requests();
    const perItem = Map.groupBy(requests, (r) => r.itemHash);
    expect(perItem.size).toBe(20);
    for (const attempts of perItem.values()) {
      expect(attempts.map((a) => a.status)).toEqual([429, 200]);
    }
    // Usage counts only the successful calls, once each.
    const billed = requests.reduce((total, r) => total + (r.usage?.output_tokens ?? 0), 0);
    expect(job.usage.outputTokens).toBe(billed);
  });

  it("stops calling the LLM for a job once the key is rejected (401), with a clear error", async () => {
    const callIds = await createCalls(stack.api, 10);
    const metrics = await createMetrics(
      stack.api,
      everyType.slice(0, 3).map((m) => ({ ...m, slug: `${m.slug}-401` })),
    );
    stack.anthropic.configure({ fault: () => "unauthorized" });
    const job = await runJob(stack, callIds, metrics);
    expect(job).toMatchObject({ status: "FAILED", totalItems: 30, completedItems: 0, failedItems: 30 });
    expect(job.errorMessage).toMatch(/rejected the API key \(401\)/);
    const values = await jobValues(stack.api, job.id);
    expect(values).toHaveLength(30);
    for (const value of values) expect(value.errorMessage).toMatch(/rejected the API key \(401\): invalid x-api-key/);
    // Each item that reached the API tried once more with the key read again; most never reached it.
    const requests = stack.anthropic.requests();
    expect(requests.length).toBeLessThanOrEqual(20);
    const perItem = Map.groupBy(requests, (r) => r.itemHash);
    for (const asked of perItem.values()) expect(asked.length).toBeLessThanOrEqual(2);
  });

  it("after a 401, re-reads the rotated key and carries on: the job is not blocked", async () => {
    const previousKey = process.env.ANTHROPIC_API_KEY;
    const callIds = await createCalls(stack.api, 3);
    const metrics = await createMetrics(stack.api, [{ ...everyType[0]!, slug: "refund-asked-rotation" }]);
    try {
      // The running functions hold a client with the current key...
      stack.anthropic.configure({ fault: undefined, acceptedApiKeys: [String(previousKey)] });
      expect(await runJob(stack, callIds, metrics)).toMatchObject({ status: "COMPLETED", completedItems: 3 });
      // ...when the key is rotated: the old one is refused, the secret holds the new one.
      process.env.ANTHROPIC_API_KEY = "rotated-key";
      stack.anthropic.configure({ acceptedApiKeys: ["rotated-key"] });
      stack.anthropic.reset();
      const job = await runJob(stack, callIds, metrics);
      expect(job).toMatchObject({ status: "COMPLETED", completedItems: 3, failedItems: 0 });
      expect(job.errorMessage).toBeUndefined();
      const values = await jobValues(stack.api, job.id);
      expect(values.map((v) => v.captureStatus)).toEqual(["SUCCESS", "SUCCESS", "SUCCESS"]);
      const statuses = stack.anthropic.requests().map((r) => r.status);
      expect(statuses).toContain(401);
      expect(statuses.filter((status) => status === 200)).toHaveLength(3);
    } finally {
      process.env.ANTHROPIC_API_KEY = previousKey;
      stack.anthropic.configure({ acceptedApiKeys: undefined });
    }
  });
  it("shows the judge the tool invocations and call properties a definition includes", async () => {
    const toolInvocations = [{ name: "lookup_account", startOffsetMs: 1000, parameters: { id: "42" }, result: "ok" }];
    const [callId] = await createCalls(stack.api, 1, { toolInvocations, properties: { plan: "gold" } });
    const question = 'Was the "lookup_account" tool used on a "gold" plan?';
    const [blind, sighted] = await createMetrics(stack.api, [
      judged("tool-used-blind", "BOOLEAN", question),
      judged("tool-used", "BOOLEAN", question, { include: ["toolInvocations", "properties.plan"] }),
    ]);
    const job = await runJob(stack, [callId!], [blind!, sighted!]);
    expect(job).toMatchObject({ status: "COMPLETED", completedItems: 2 });
    const values = await jobValues(stack.api, job.id);
    expect(values.find((v) => v.slug === "tool-used-blind")).toMatchObject({ captureStatus: "SUCCESS", value: false });
    expect(values.find((v) => v.slug === "tool-used")).toMatchObject({ captureStatus: "SUCCESS", value: true });
    const bad = await stack.api(
      "POST",
      "/v1/metric/definitions",
      judged("bad-include", "BOOLEAN", "?", { include: ["crm"] }),
    );
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body.error.details)).toMatch(/include\.0.*toolInvocations/);
  });
});
