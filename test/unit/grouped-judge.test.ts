/**
 * Grouped judging with the real @anthropic-ai/sdk client against the fake Anthropic server:
 * every question about a call in one request, answers validated per metric, one bad field
 * failing only its own item, and usage split so the items add up to what was billed.
 */
import Anthropic from "@anthropic-ai/sdk";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type FakeAnthropic, startFakeAnthropic } from "../../infra/local/fake-anthropic.ts";
import { createGroupedLlmJudge, createLlmJudge, splitUsage } from "../../shared/llm/judge.ts";
import { addUsage, emptyUsage } from "../../shared/llm/pricing.ts";
import { buildGroupedJudgeRequest } from "../../shared/llm/prompt.ts";
import type { EvaluationOutcome } from "../../shared/pipeline/evaluators.ts";
import type { TokenUsage } from "../../shared/schemas/job.ts";
import { judgedCall as call, judgedDefinition as definition } from "../support/judge-fixtures.ts";

const metrics = [
  definition({ id: "refund", outputType: "BOOLEAN", llmPrompt: 'Was a "refund" offered?' }),
  definition({ id: "sorry", outputType: "COUNT", llmPrompt: 'Turns with "sorry"?' }),
  definition({ id: "empathy", outputType: "SCALE", scaleMin: 1, scaleMax: 5, llmPrompt: 'Empathy ("sorry")?' }),
  definition({
    id: "reason",
    outputType: "CLASSIFICATION",
    classificationOptions: ["card", "billing", "refund"],
    maxClassifications: 2,
    llmPrompt: "Why did they call?",
  }),
  definition({ id: "where", outputType: "OFFSET", llmPrompt: 'Where is the first "refund"?' }),
];

let fake: FakeAnthropic;
let judgeGroup: ReturnType<typeof createGroupedLlmJudge>;
let judge: ReturnType<typeof createLlmJudge>;

beforeAll(async () => {
  fake = await startFakeAnthropic({ minCacheableTokens: 0 });
  const client = new Anthropic({ apiKey: "test", baseURL: fake.url, maxRetries: 0 });
  const deps = { client: async () => client, defaultModel: "claude-sonnet-5-5", maxTokens: 512 };
  judgeGroup = createGroupedLlmJudge(deps);
  judge = createLlmJudge(deps);
});
afterAll(() => fake?.stop());
beforeEach(() => {
  fake.reset();
  fake.configure({ fault: undefined });
});

const billed = () =>
  fake.requests().reduce<TokenUsage>(
    (sum, r) =>
      addUsage(sum, {
        inputTokens: r.usage?.input_tokens ?? 0,
        outputTokens: r.usage?.output_tokens ?? 0,
        cacheCreationInputTokens: r.usage?.cache_creation_input_tokens ?? 0,
        cacheReadInputTokens: r.usage?.cache_read_input_tokens ?? 0,
        thinkingTokens: r.usage?.output_tokens_details?.thinking_tokens ?? 0,
      }),
    emptyUsage(),
  );
const summed = (outcomes: EvaluationOutcome[]) =>
  outcomes.reduce((sum, outcome) => addUsage(sum, outcome.usage ?? emptyUsage()), emptyUsage());
/** What a judgment says, without what it cost. */
const verdict = ({ usage: _usage, estimatedCostUsd: _cost, ...rest }: EvaluationOutcome) => rest;

describe("grouped judging", () => {
  it("asks every question about a call in one request and answers as the isolated judge does", async () => {
    const grouped = await judgeGroup(metrics, call);
    expect(fake.requests()).toHaveLength(1);
    expect(fake.requests()[0]?.questions).toBe(metrics.length);
    const isolated = [];
    for (const metric of metrics) isolated.push(await judge(metric, call));
    expect(grouped.map(verdict)).toEqual(isolated.map(verdict));
    expect(grouped.map((o) => o.value)).toEqual([true, 1, 2, ["billing", "refund"], 5600]);
  });

  it("splits the request's usage across the items so that they add up to what was billed", async () => {
    const outcomes = await judgeGroup(metrics, call);
    expect(summed(outcomes)).toEqual(billed());
    expect(new Set(outcomes.map((o) => o.model))).toEqual(new Set(["claude-sonnet-5-5"]));
    // The transcript is read once, with no cache write: a grouped request has no breakpoint.
    expect(billed().cacheCreationInputTokens).toBe(0);
    const request = buildGroupedJudgeRequest(metrics, call, { model: "claude-sonnet-5-5", maxTokens: 100 });
    expect(JSON.stringify(request.messages)).not.toContain("cache_control");
  });

  it("one invalid field fails only its own item, which the isolated judge answers; usage still adds up", async () => {
    fake.configure({ fault: (request) => (request.questions > 1 ? "malformed" : undefined) });
    const outcomes = await judgeGroup(metrics, call);
    expect(outcomes.map((o) => o.captureStatus)).toEqual(Array(metrics.length).fill("SUCCESS"));
    expect(outcomes[0]?.value).toBe(true);
    expect(fake.requests().map((r) => r.questions)).toEqual([5, 1]);
    expect(summed(outcomes)).toEqual(billed());
    // The item judged again carries its share of the grouped request and its own request.
    expect(outcomes[0]?.usage?.inputTokens).toBeGreaterThan(outcomes[1]?.usage?.inputTokens ?? 0);
  });

  it("a refusal of the whole answer sends every metric to the isolated judge", async () => {
    fake.configure({ fault: (request) => (request.questions > 1 ? "refusal" : undefined) });
    const outcomes = await judgeGroup(metrics, call);
    expect(outcomes.map((o) => o.captureStatus)).toEqual(Array(metrics.length).fill("SUCCESS"));
    expect(fake.requests().map((r) => r.questions)).toEqual([5, 1, 1, 1, 1, 1]);
    expect(summed(outcomes)).toEqual(billed());
  });

  it("an empty transcript is DATA_MISSING for every metric, without a request", async () => {
    const outcomes = await judgeGroup(metrics, { ...call, transcript: [] });
    expect(outcomes.map((o) => o.captureStatus)).toEqual(Array(metrics.length).fill("DATA_MISSING"));
    expect(fake.requests()).toHaveLength(0);
  });

  it("splits usage in integer shares that add up exactly", () => {
    const usage = {
      inputTokens: 10,
      outputTokens: 7,
      cacheCreationInputTokens: 0,
      cacheReadInputTokens: 2,
      thinkingTokens: 5,
    };
    const shares = splitUsage(usage, 3);
    expect(shares.map((s) => s.inputTokens)).toEqual([4, 3, 3]);
    expect(shares.map((s) => s.outputTokens)).toEqual([3, 2, 2]);
    expect(shares.map((s) => s.cacheReadInputTokens)).toEqual([1, 1, 0]);
    expect(shares.map((s) => s.thinkingTokens)).toEqual([2, 2, 1]);
    expect(shares.reduce(addUsage, emptyUsage())).toEqual(usage);
  });
});
