/**
 * The judge with the real @anthropic-ai/sdk client over HTTP against the fake Anthropic
 * server: typed values per output type, corrective retry, failure classification, usage,
 * cost and the prompt cache.
 */
import Anthropic from "@anthropic-ai/sdk";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type FakeAnthropic, startFakeAnthropic } from "../../infra/local/fake-anthropic.ts";
import { fakeJudgment } from "../../infra/local/fake-judgments.ts";
import { createLlmJudge, retryAfterSeconds } from "../../shared/llm/judge.ts";
import { interpretJudgment } from "../../shared/llm/judgment.ts";
import { estimateCostUsd } from "../../shared/llm/pricing.ts";
import {
  buildGroupedJudgeRequest,
  buildJudgeRequest,
  metricInstructions,
  renderTranscript,
} from "../../shared/llm/prompt.ts";
import { LlmCallsBlockedError, RetryableEvaluationError } from "../../shared/pipeline/evaluation-errors.ts";
import type { Call } from "../../shared/schemas/call.ts";
import { createMetricSchema, type MetricDefinition } from "../../shared/schemas/metric.ts";
import { judgedCall as call, judgedDefinition as definition } from "../support/judge-fixtures.ts";

const refundAsked = definition({ outputType: "BOOLEAN", llmPrompt: 'Was a "refund" offered?' });

let fake: FakeAnthropic;
let judge: ReturnType<typeof createLlmJudge>;

beforeAll(async () => {
  fake = await startFakeAnthropic({ minCacheableTokens: 0 });
  const client = new Anthropic({ apiKey: "test", baseURL: fake.url, maxRetries: 0 });
  judge = createLlmJudge({
    client: async () => client,
    defaultModel: "claude-sonnet-5-5",
    maxTokens: 512,
    effort: "low",
  });
});
afterAll(() => fake?.stop());
beforeEach(() => {
  fake.reset();
  fake.configure({ fault: undefined, retryAfterSeconds: 1 });
});

describe("LLM judge output types", () => {
  it("BOOLEAN: true with the segments it rests on (a range over two segments)", async () => {
    const outcome = await judge(refundAsked, call);
    expect(outcome).toMatchObject({
      captureStatus: "SUCCESS",
      value: true,
      context: "SEGMENT_RANGE",
      fromSegment: { id: "s2", text: "I'm sorry. I can issue a refund today.", startOffsetMs: 5600, endOffsetMs: 8000 },
      toSegment: { id: "s3", startOffsetMs: 8400 },
      model: "claude-sonnet-5-5",
    });
    expect(outcome.confidence).toBe(0.9);
    expect(outcome.valueReasoning).toMatch(/2 segment/);
  });

  it("NUMERIC, COUNT, SCALE, CLASSIFICATION, TEXT and OFFSET come back typed and in range", async () => {
    const numeric = await judge(definition({ outputType: "NUMERIC", llmPrompt: 'How often is "refund" said?' }), call);
    expect(numeric).toMatchObject({ captureStatus: "SUCCESS", value: 2 });
    const count = await judge(definition({ outputType: "COUNT", llmPrompt: 'Turns with "sorry"?' }), call);
    expect(count).toMatchObject({ captureStatus: "SUCCESS", value: 1, context: "SEGMENT", segment: { id: "s2" } });
    const scale = await judge(
      definition({ outputType: "SCALE", scaleMin: 1, scaleMax: 5, llmPrompt: 'Empathy ("sorry")?' }),
      call,
    );
    expect(scale).toMatchObject({ captureStatus: "SUCCESS", value: 2 });
    const classification = await judge(
      definition({
        outputType: "CLASSIFICATION",
        classificationOptions: ["card", "billing", "refund"],
        maxClassifications: 2,
        llmPrompt: "Why did they call?",
      }),
      call,
    );
    expect(classification).toMatchObject({ captureStatus: "SUCCESS", value: ["billing", "refund"], context: "CALL" });
    const text = await judge(definition({ outputType: "TEXT", llmPrompt: 'What was said about "charged"?' }), call);
    expect(text).toMatchObject({ captureStatus: "SUCCESS", value: "I was charged twice on my billing statement." });
    const offset = await judge(definition({ outputType: "OFFSET", llmPrompt: 'Where is the first "refund"?' }), call);
    expect(offset).toMatchObject({
      captureStatus: "SUCCESS",
      value: 5600,
      context: "SEGMENT",
      segment: { id: "s2", startOffsetMs: 5600 },
    });
  });

  it("NOT_APPLICABLE when the model says so, DATA_MISSING without calling it for an empty transcript", async () => {
    const gated = definition({ llmPrompt: 'Only if the transcript mentions "mortgage": was "refund" offered?' });
    expect(await judge(gated, call)).toMatchObject({ captureStatus: "NOT_APPLICABLE", context: "CALL" });
    const offset = definition({ outputType: "OFFSET", llmPrompt: 'Where is "goodbye" said?' });
    expect(await judge(offset, call)).toMatchObject({ captureStatus: "NOT_APPLICABLE" });
    const requestsBefore = fake.requests().length;
    const empty = await judge(refundAsked, { ...call, transcript: [] });
    expect(empty).toMatchObject({ captureStatus: "DATA_MISSING" });
    expect(fake.requests()).toHaveLength(requestsBefore);
  });

  it("uses the definition's model over the default", async () => {
    await judge({ ...refundAsked, model: "claude-haiku-4-5" }, call);
    expect(fake.requests().at(-1)?.model).toBe("claude-haiku-4-5");
  });
});

describe("invalid model output", () => {
  it("is corrected by one retry; both calls' usage is counted", async () => {
    fake.configure({ fault: () => "malformed" });
    const outcome = await judge(refundAsked, call);
    expect(outcome).toMatchObject({ captureStatus: "SUCCESS", value: true });
    const requests = fake.requests();
    expect(requests.map((r) => r.isCorrection)).toEqual([false, true]);
    const summed = requests.reduce((sum, r) => sum + (r.usage?.output_tokens ?? 0), 0);
    expect(outcome.usage?.outputTokens).toBe(summed);
  });

  it("hands the limiter each answer with its request's estimate; the corrective retry, not admitted, has none", async () => {
    const client = new Anthropic({ apiKey: "test", baseURL: fake.url, maxRetries: 0 });
    const answers: { estimatedInputTokens?: number; inputTokens: number }[] = [];
    const observed = createLlmJudge({
      client: async () => client,
      rateLimits: {
        answered: async (_model, _headers, usage) => {
          answers.push({ estimatedInputTokens: usage.estimatedInputTokens, inputTokens: usage.inputTokens });
        },
        rateLimited: async () => {},
      },
      defaultModel: "claude-sonnet-5-5",
      maxTokens: 512,
    });
    fake.configure({ fault: () => "malformed" });
    expect(await observed(refundAsked, call, 321)).toMatchObject({ captureStatus: "SUCCESS" });
    expect(answers.map((answer) => answer.estimatedInputTokens)).toEqual([321, undefined]);
    expect(answers.every((answer) => answer.inputTokens > 0)).toBe(true);
  });

  it("treats a refusal as invalid and asks once more", async () => {
    fake.configure({ fault: () => "refusal" });
    const outcome = await judge(refundAsked, call);
    expect(outcome).toMatchObject({ captureStatus: "SUCCESS", value: true });
    expect(fake.requests().map((r) => r.isCorrection)).toEqual([false, true]);
  });

  it("ends in ERROR with a clear message when the retry is invalid too", async () => {
    fake.configure({ fault: () => "malformed_always" });
    const outcome = await judge(refundAsked, call);
    expect(outcome.captureStatus).toBe("ERROR");
    expect(outcome.errorMessage).toMatch(/invalid twice.*value: Invalid input: expected boolean/);
    expect(fake.requests()).toHaveLength(2);
    expect(outcome.usage?.inputTokens).toBeGreaterThan(0);
  });

  it("rejects wrong types, out-of-range values, unknown options and unknown segment ids", () => {
    const answer = (value: unknown, segmentIds: string[] = []) => ({
      applicable: true,
      value,
      reasoning: "r",
      confidence: 0.5,
      segmentIds,
    });
    const scale = definition({ outputType: "SCALE", scaleMin: 1, scaleMax: 5 });
    expect(interpretJudgment(scale, call, answer(6))).toMatchObject({ ok: false });
    expect(interpretJudgment(scale, call, answer(2.5))).toMatchObject({ ok: false });
    expect(interpretJudgment(scale, call, answer(5))).toMatchObject({ ok: true });
    const classification = definition({ outputType: "CLASSIFICATION", classificationOptions: ["a", "b"] });
    expect(interpretJudgment(classification, call, answer(["c"]))).toMatchObject({ ok: false });
    expect(interpretJudgment(classification, call, answer(["a", "b"]))).toMatchObject({ ok: false });
    expect(interpretJudgment(classification, call, answer("a"))).toMatchObject({
      ok: true,
      judgment: { value: ["a"] },
    });
    expect(interpretJudgment(refundAsked, call, answer(true, ["s9"]))).toMatchObject({
      ok: false,
      problem: expect.stringMatching(/s9 is not a segment/),
    });
    expect(interpretJudgment(refundAsked, call, { ...answer(true), confidence: 2 })).toMatchObject({ ok: false });
    expect(interpretJudgment(definition({ outputType: "COUNT" }), call, answer(-1))).toMatchObject({ ok: false });
    expect(interpretJudgment(definition({ outputType: "OFFSET" }), call, answer("s7"))).toMatchObject({ ok: false });
    // Numbers the table cannot hold go back to the model, which can answer again.
    const numeric = definition({ outputType: "NUMERIC" });
    expect(interpretJudgment(numeric, call, answer(1e200))).toMatchObject({
      ok: false,
      problem: "value: must be 0 or a finite number with a magnitude between 1e-130 and 1e125",
    });
    expect(interpretJudgment(numeric, call, answer(1e-200))).toMatchObject({ ok: false });
    expect(interpretJudgment(numeric, call, answer(1e125))).toMatchObject({ ok: true, judgment: { value: 1e125 } });
  });

  it("checks each definition against its own range and options, although value schemas are reused", () => {
    const answer = (value: unknown) => ({ segmentIds: [], reasoning: "r", applicable: true, value, confidence: 0.5 });
    const oneToFive = definition({ outputType: "SCALE", scaleMin: 1, scaleMax: 5 });
    const oneToTen = definition({ outputType: "SCALE", scaleMin: 1, scaleMax: 10 });
    expect(interpretJudgment(oneToFive, call, answer(7))).toMatchObject({ ok: false });
    expect(interpretJudgment(oneToTen, call, answer(7))).toMatchObject({ ok: true, judgment: { value: 7 } });
    expect(interpretJudgment(oneToFive, call, answer(7))).toMatchObject({ ok: false });
    const ab = definition({ outputType: "CLASSIFICATION", classificationOptions: ["a", "b"] });
    const ac = definition({ outputType: "CLASSIFICATION", classificationOptions: ["a", "c"] });
    const twoOfAb = definition({
      outputType: "CLASSIFICATION",
      classificationOptions: ["a", "b"],
      maxClassifications: 2,
    });
    expect(interpretJudgment(ab, call, answer("c"))).toMatchObject({ ok: false });
    expect(interpretJudgment(ac, call, answer("c"))).toMatchObject({ ok: true });
    expect(interpretJudgment(ab, call, answer(["a", "b"]))).toMatchObject({ ok: false });
    expect(interpretJudgment(twoOfAb, call, answer(["a", "b"]))).toMatchObject({ ok: true });
  });
});

describe("Anthropic failures", () => {
  it("429 and 529 become throttled retries with the server's retry-after; 500 is an ordinary retry", async () => {
    fake.configure({ fault: () => "rate_limit", retryAfterSeconds: 7 });
    const rateLimited = await judge(refundAsked, call).catch((error: unknown) => error);
    expect(rateLimited).toBeInstanceOf(RetryableEvaluationError);
    expect(rateLimited).toMatchObject({ retryAfterSeconds: 7, throttled: true });
    fake.configure({ fault: () => "overloaded", retryAfterSeconds: 3 });
    const overloaded = await judge(refundAsked, call).catch((error: unknown) => error);
    expect(overloaded).toMatchObject({ name: "RetryableEvaluationError", retryAfterSeconds: 3, throttled: true });
    fake.configure({ fault: () => "server_error" });
    const failed = await judge(refundAsked, call).catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(RetryableEvaluationError);
    expect(failed).toMatchObject({ throttled: false });
  });

  it("a rejected key or an empty credit balance blocks further calls", async () => {
    fake.configure({ fault: () => "unauthorized" });
    await expect(judge(refundAsked, call)).rejects.toThrow(LlmCallsBlockedError);
    await expect(judge(refundAsked, call)).rejects.toThrow(/rejected the API key \(401\): invalid x-api-key/);
    fake.configure({ fault: () => "credit" });
    await expect(judge(refundAsked, call)).rejects.toThrow(/credit balance is too low/);
  });

  it("after a 401, reads the key again and retries once with the new client", async () => {
    fake.configure({ acceptedApiKeys: ["rotated"] });
    try {
      const stale = new Anthropic({ apiKey: "rotated-out", baseURL: fake.url, maxRetries: 0 });
      const rotated = new Anthropic({ apiKey: "rotated", baseURL: fake.url, maxRetries: 0 });
      const refreshedAfter: unknown[] = [];
      const rotating = createLlmJudge({
        client: async () => stale,
        refreshClient: async (failed) => {
          refreshedAfter.push(failed);
          return rotated;
        },
        defaultModel: "claude-sonnet-5-5",
        maxTokens: 512,
      });
      expect(await rotating(refundAsked, call)).toMatchObject({ captureStatus: "SUCCESS", value: true });
      expect(refreshedAfter).toEqual([stale]);
      expect(fake.requests().map((r) => r.status)).toEqual([401, 200]);

      // The secret still holds the rejected key: one retry, then the job's calls are blocked.
      fake.reset();
      const unchanged = createLlmJudge({
        client: async () => stale,
        refreshClient: async () => stale,
        defaultModel: "claude-sonnet-5-5",
        maxTokens: 512,
      });
      await expect(unchanged(refundAsked, call)).rejects.toThrow(/rejected the API key \(401\)/);
      expect(fake.requests().map((r) => r.status)).toEqual([401, 401]);
    } finally {
      fake.configure({ acceptedApiKeys: undefined });
    }
  });

  it("an unreachable server is retryable", async () => {
    const client = new Anthropic({ apiKey: "test", baseURL: "http://127.0.0.1:9", maxRetries: 0 });
    const offline = createLlmJudge({ client: async () => client, defaultModel: "claude-sonnet-5-5", maxTokens: 64 });
    await expect(offline(refundAsked, call)).rejects.toBeInstanceOf(RetryableEvaluationError);
  });

  it("parses retry-after in seconds, milliseconds and as a date", () => {
    expect(retryAfterSeconds(new Headers({ "retry-after": "12" }))).toBe(12);
    expect(retryAfterSeconds(new Headers({ "retry-after-ms": "1500", "retry-after": "9" }))).toBe(2);
    const now = Date.parse("2026-11-24T10:00:00Z");
    expect(retryAfterSeconds(new Headers({ "retry-after": "Tue, 24 Nov 2026 10:00:30 GMT" }), now)).toBe(30);
    expect(retryAfterSeconds(new Headers())).toBeUndefined();
  });
});

describe("usage, cost and prompt caching", () => {
  it("puts the transcript in a cached prefix shared by every metric of the call", async () => {
    const empathy = definition({ outputType: "SCALE", scaleMin: 1, scaleMax: 5, llmPrompt: 'Empathy ("sorry")?' });
    const first = await judge(refundAsked, call);
    const second = await judge(empathy, call);
    expect(first.usage?.cacheCreationInputTokens).toBeGreaterThan(0);
    expect(first.usage?.cacheReadInputTokens).toBe(0);
    expect(second.usage?.cacheReadInputTokens).toBe(first.usage?.cacheCreationInputTokens);
    expect(second.usage?.cacheCreationInputTokens).toBe(0);
    const [a, b] = fake.requests();
    expect(a?.prefixHash).toBe(b?.prefixHash);
    expect(a?.itemHash).not.toBe(b?.itemHash);

    const request = buildJudgeRequest(refundAsked, call, { model: "claude-sonnet-5-5", maxTokens: 100, effort: "low" });
    const content = request.messages[0]?.content as { text: string; cache_control?: unknown }[];
    expect(content[0]).toMatchObject({ text: renderTranscript(call), cache_control: { type: "ephemeral" } });
    expect(content[1]).toEqual({ type: "text", text: metricInstructions(refundAsked) });
    // Structured output, no tools; low effort where the model takes it.
    expect(request.tools).toBeUndefined();
    expect(request.tool_choice).toBeUndefined();
    expect(request.output_config).toEqual({ format: expect.objectContaining({ type: "json_schema" }), effort: "low" });
    const older = buildJudgeRequest(refundAsked, call, { model: "claude-haiku-4-5", maxTokens: 100, effort: "low" });
    expect(older.output_config).toEqual({ format: request.output_config?.format });
  });

  it("records thinking tokens apart, within the output tokens they are billed as; a definition may ask for more effort", async () => {
    const low = await judge(refundAsked, call);
    expect(low.usage?.thinkingTokens).toBe(fake.requests()[0]?.usage?.output_tokens_details?.thinking_tokens);
    expect(low.usage?.thinkingTokens).toBeGreaterThan(0);
    expect(low.usage?.outputTokens).toBeGreaterThan(low.usage?.thinkingTokens ?? 0);
    const high = await judge({ ...refundAsked, effort: "high" }, call);
    expect(high.usage?.thinkingTokens).toBeGreaterThan(low.usage?.thinkingTokens ?? 0);
    expect(fake.requests().map((r) => r.effort)).toEqual(["low", "high"]);
    const plain = await judge({ ...refundAsked, model: "claude-haiku-4-5" }, call);
    expect(plain.usage?.thinkingTokens).toBe(0);
  });

  it("estimates cost from the price table, cache reads at a tenth and writes at 1.25x", async () => {
    const usage = {
      inputTokens: 1000,
      outputTokens: 100,
      cacheCreationInputTokens: 2000,
      cacheReadInputTokens: 10_000,
      thinkingTokens: 0,
    };
    // Sonnet: 1000*3 + 100*15 + 2000*3.75 + 10000*0.3 = 15,000 per million = $0.015.
    expect(estimateCostUsd("claude-sonnet-4-5", usage)).toBe(0.015);
    expect(estimateCostUsd("claude-sonnet-4-5-20250929", usage)).toBe(0.015);
    expect(estimateCostUsd("unknown-model", usage)).toBeUndefined();
    const outcome = await judge(refundAsked, call);
    expect(outcome.estimatedCostUsd).toBe(estimateCostUsd("claude-sonnet-5-5", outcome.usage!));
    // Sonnet 5.5: $2 input, $10 output, $2.50 cache writes, $0.20 cache reads per million.
    expect(estimateCostUsd("claude-sonnet-5-5", usage)).toBe(0.01);
  });
});

describe("context a definition asks for", () => {
  const withTools: Call = {
    ...call,
    properties: { plan: "gold", region: "EU" },
    toolInvocations: [{ name: "lookup_account", startOffsetMs: 2600, parameters: { id: "42" }, result: { ok: true } }],
  };
  const asks = { ...refundAsked, include: ["toolInvocations", "properties.plan"] };

  it("renders the tool invocations and chosen properties after the transcript, in a cached block of their own", () => {
    const request = buildJudgeRequest(asks, withTools, { model: "claude-sonnet-5-5", maxTokens: 100 });
    const content = request.messages[0]?.content as { text: string; cache_control?: unknown }[];
    expect(content.map((block) => Boolean(block.cache_control))).toEqual([true, true, false]);
    expect(content[1]?.text).toContain('[t0] 00:02.6 lookup_account({"id":"42"}) → {"ok":true}');
    expect(content[1]?.text).toContain("plan: gold");
    expect(content[1]?.text).not.toContain("region");
    const plain = buildJudgeRequest(refundAsked, withTools, { model: "claude-sonnet-5-5", maxTokens: 100 });
    expect(plain.messages[0]?.content).toHaveLength(2);
  });

  it("keeps the transcript a cache prefix of its own: metrics with and without context share it", async () => {
    const first = await judge(refundAsked, withTools);
    const second = await judge(asks, withTools);
    const third = await judge({ ...asks, llmPrompt: 'Was "billing" discussed?' }, withTools);
    // The second reads the transcript and writes the context; the third reads both.
    expect(second.usage?.cacheReadInputTokens).toBe(first.usage?.cacheCreationInputTokens);
    expect(second.usage?.cacheCreationInputTokens).toBeGreaterThan(0);
    expect(third.usage?.cacheReadInputTokens).toBe(
      (second.usage?.cacheReadInputTokens ?? 0) + (second.usage?.cacheCreationInputTokens ?? 0),
    );
    expect(third.usage?.cacheCreationInputTokens).toBe(0);
  });

  it("accepts only the context it knows how to render", () => {
    const base = { slug: "x", name: "x", calculationType: "LLM_JUDGE", outputType: "BOOLEAN", llmPrompt: "?" };
    expect(createMetricSchema.safeParse({ ...base, include: ["toolInvocations", "properties.plan"] }).success).toBe(
      true,
    );
    const wrong = createMetricSchema.safeParse({ ...base, include: ["tools", "properties."] });
    expect(wrong.error?.issues.map((issue) => issue.path.join("."))).toEqual(["include.0", "include.1"]);
  });
});

describe("few-shot examples on a definition", () => {
  const examples = [
    {
      excerpt: "CUSTOMER: Can I get my money back?\nAGENT: Yes, I will refund it.",
      value: true,
      reasoning: "The agent offers to refund the charge.",
    },
    { excerpt: "CUSTOMER: What is my balance?\nAGENT: It is $20.", value: false },
  ];
  const taught = { ...refundAsked, examples };
  const textOf = (request: Anthropic.MessageCreateParamsNonStreaming) =>
    ((request.messages[0]?.content ?? []) as { text: string; cache_control?: unknown }[]).map((block) => ({
      text: block.text,
      cached: Boolean(block.cache_control),
    }));

  it("renders them once, after the transcript and the context, in a cached block before the question", () => {
    const blocks = textOf(
      buildJudgeRequest({ ...taught, include: ["properties.plan"] }, call, {
        model: "claude-sonnet-5-5",
        maxTokens: 100,
      }),
    );
    expect(blocks.map((b) => b.cached)).toEqual([true, true, true, false]);
    const rendered = blocks[2]?.text ?? "";
    expect(rendered).toMatch(/^<examples>/);
    expect(rendered).toContain("Can I get my money back?");
    expect(rendered).toContain("Expected answer: true");
    expect(rendered).toContain("Why: The agent offers to refund the charge.");
    expect(rendered).toContain("Expected answer: false");
    expect(blocks.filter((b) => b.text.includes("Can I get my money back?"))).toHaveLength(1);
    expect(blocks[3]?.text).toMatch(/^Metric: /);
  });

  it("reads them from the prompt cache when the answer is corrected", async () => {
    fake.configure({ fault: (r) => (r.isCorrection ? undefined : "malformed") });
    const correctionReads = async (definition: MetricDefinition) => {
      fake.reset();
      expect((await judge(definition, call)).captureStatus).toBe("SUCCESS");
      const [first, correction] = fake.requests();
      const cached = (first?.usage?.cache_creation_input_tokens ?? 0) + (first?.usage?.cache_read_input_tokens ?? 0);
      expect(correction?.usage?.cache_read_input_tokens).toBe(cached);
      return cached;
    };
    // The examples are part of what the correction reads from the cache.
    expect(await correctionReads(taught)).toBeGreaterThan(await correctionReads(refundAsked));
  });

  it("puts each question's examples with it in a grouped request", () => {
    const other = { ...refundAsked, id: "m2", llmPrompt: 'Was "billing" discussed?' };
    const request = buildGroupedJudgeRequest([taught, other], call, { model: "claude-sonnet-5-5", maxTokens: 100 });
    const question = textOf(request).at(-1)?.text ?? "";
    expect(question.split("Can I get my money back?")).toHaveLength(2);
    expect(question.indexOf("Can I get my money back?")).toBeLessThan(question.indexOf("[q2]"));
  });

  it("accepts examples whose answer fits the metric, and names each one that does not", () => {
    const base = { slug: "x", name: "x", calculationType: "LLM_JUDGE", outputType: "SCALE", llmPrompt: "?" };
    const scale = { ...base, scaleMin: 1, scaleMax: 5 };
    expect(createMetricSchema.safeParse({ ...scale, examples: [{ excerpt: "AGENT: Hi", value: 4 }] }).success).toBe(
      true,
    );
    expect(
      createMetricSchema.safeParse({ ...scale, examples: [{ excerpt: "AGENT: Hi", value: null, reasoning: "n/a" }] })
        .success,
    ).toBe(true);
    const wrong = createMetricSchema.safeParse({
      ...scale,
      examples: [
        { excerpt: "AGENT: Hi", value: 9 },
        { excerpt: "AGENT: Hi", value: "warm" },
      ],
    });
    expect(wrong.error?.issues.map((issue) => issue.path.join("."))).toEqual(["examples.0.value", "examples.1.value"]);
    const many = Array.from({ length: 6 }, () => ({ excerpt: "AGENT: Hi", value: 3 }));
    expect(createMetricSchema.safeParse({ ...scale, examples: many }).success).toBe(false);
    const builtIn = createMetricSchema.safeParse({
      slug: "x",
      name: "x",
      calculationType: "BUILT_IN",
      outputType: "COUNT",
      builtIn: { kind: "TURN_COUNT" },
      examples: [{ excerpt: "AGENT: Hi", value: 1 }],
    });
    expect(builtIn.error?.issues.map((issue) => issue.path.join("."))).toEqual(["examples"]);
  });
});

describe("structured output", () => {
  const formatOf = (d: MetricDefinition) =>
    buildJudgeRequest(d, call, { model: "claude-sonnet-5-5", maxTokens: 100 }).output_config?.format;

  it("asks for evidence before the verdict, with one schema for every metric (the format is part of the cache key)", () => {
    const format = formatOf(refundAsked);
    const schema = format?.schema as { properties: Record<string, { description?: string }>; required: string[] };
    expect(Object.keys(schema.properties)).toEqual(["segmentIds", "reasoning", "applicable", "value", "confidence"]);
    expect(schema.required).toEqual(Object.keys(schema.properties));
    // Limits the decoder cannot enforce are folded into descriptions and checked by zod after.
    expect(schema.properties.confidence).not.toHaveProperty("minimum");
    expect(schema.properties.confidence?.description).toMatch(/minimum: 0, maximum: 1/);
    const scale = definition({ outputType: "SCALE", scaleMin: 1, scaleMax: 5, llmPrompt: "Empathy?" });
    expect(formatOf(scale)).toEqual(format);
  });

  it("the fake server answers a JSON object in the schema's order, after the thinking block", async () => {
    const client = new Anthropic({ apiKey: "test", baseURL: fake.url, maxRetries: 0 });
    const response = await client.messages.create(
      buildJudgeRequest(refundAsked, call, { model: "claude-sonnet-5-5", maxTokens: 100 }),
    );
    expect(response.stop_reason).toBe("end_turn");
    expect(response.content.map((block) => block.type)).toEqual(["thinking", "text"]);
    const text = (response.content[1] as Anthropic.TextBlock).text;
    expect(Object.keys(JSON.parse(text))).toEqual(["segmentIds", "reasoning", "applicable", "value", "confidence"]);
  });

  it("the fake server refuses schema features the API does not support, with the API's 400", async () => {
    const client = new Anthropic({ apiKey: "test", baseURL: fake.url, maxRetries: 0 });
    const ask = (schema: Record<string, unknown>) =>
      client.messages.create({
        model: "claude-sonnet-5-5",
        max_tokens: 100,
        messages: [{ role: "user", content: "hi" }],
        output_config: { format: { type: "json_schema", schema } },
      });
    const object = (properties: Record<string, unknown>) => ({
      type: "object",
      properties,
      required: Object.keys(properties),
      additionalProperties: false,
    });
    await expect(ask(object({ score: { type: "number", minimum: 0, maximum: 1 } }))).rejects.toMatchObject({
      status: 400,
      error: {
        error: { type: "invalid_request_error", message: expect.stringMatching(/maximum, minimum are not supported/) },
      },
    });
    await expect(ask({ type: "object", properties: {} })).rejects.toMatchObject({
      status: 400,
      error: { error: { message: expect.stringMatching(/additionalProperties' must be explicitly set to false/) } },
    });
    await expect(
      ask(object({ tags: { type: "array", items: { type: "string" }, minItems: 2 } })),
    ).rejects.toMatchObject({
      status: 400,
    });
    const accepted = await ask(object({ tags: { type: "array", items: { type: "string" }, minItems: 1 } }));
    expect(JSON.parse((accepted.content.at(-1) as Anthropic.TextBlock).text)).toHaveProperty("tags");
  });

  it("a changed format misses the prompt cache, as the format is part of its key", async () => {
    const client = new Anthropic({ apiKey: "test", baseURL: fake.url, maxRetries: 0 });
    const request = buildJudgeRequest(refundAsked, call, { model: "claude-sonnet-5-5", maxTokens: 100 });
    const format = request.output_config?.format as Anthropic.JSONOutputFormat;
    const otherFormat = { ...format, schema: { ...format.schema, description: "another metric's schema" } };
    await client.messages.create(request);
    const same = await client.messages.create(request);
    const other = await client.messages.create({ ...request, output_config: { format: otherFormat } });
    expect(same.usage.cache_read_input_tokens).toBeGreaterThan(0);
    expect(other.usage.cache_read_input_tokens).toBe(0);
    expect(other.usage.cache_creation_input_tokens).toBeGreaterThan(0);
  });
});

describe("fake Anthropic server", () => {
  it("judges deterministically from the transcript and the question", () => {
    const transcript = renderTranscript(call);
    const ask = (d: Partial<MetricDefinition>) => fakeJudgment(transcript, metricInstructions(definition(d)));
    expect(ask({ llmPrompt: 'Did they say "goodbye"?' })).toMatchObject({ applicable: true, value: false });
    expect(ask({ outputType: "COUNT", llmPrompt: 'How many "refund"?' })).toMatchObject({ value: 2 });
    expect(ask({ llmPrompt: 'Only if the transcript mentions "bank": "refund"?' })).toMatchObject({ value: true });
  });

  it("answers 401 without an API key, like the real API", async () => {
    const response = await fetch(`${fake.url}/v1/messages`, { method: "POST", body: "{}" });
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ error: { type: "authentication_error" } });
  });

  it("injects faults and latency per request header", async () => {
    const headers = { "x-api-key": "k", "content-type": "application/json", "x-fake-fault": "overloaded" };
    const body = JSON.stringify({ model: "m", max_tokens: 10, messages: [{ role: "user", content: "hi" }] });
    const response = await fetch(`${fake.url}/v1/messages`, { method: "POST", headers, body });
    expect(response.status).toBe(529);
    expect(response.headers.get("retry-after")).toBe("1");
    const started = Date.now();
    const slow = await fetch(`${fake.url}/v1/messages`, {
      method: "POST",
      headers: { "x-api-key": "k", "x-fake-latency-ms": "300" },
      body,
    });
    expect(slow.status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
  });
});
