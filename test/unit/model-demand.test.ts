/**
 * What the evaluators tell the limiter a model request will count toward the input-tokens
 * limit: on a warm cache only what follows the cached prefix, unless the prefix is too short
 * for the API to cache at all.
 */
import { describe, expect, it } from "vitest";
import { modelDemand } from "../../shared/pipeline/evaluators.ts";
import type { Call } from "../../shared/schemas/call.ts";
import { judgedCall, judgedDefinition } from "../support/judge-fixtures.ts";

const refundAsked = judgedDefinition({ outputType: "BOOLEAN", llmPrompt: 'Was a "refund" offered?' });

const inputTokens = (call: Call, cacheWarm: boolean) =>
  modelDemand([refundAsked], call, cacheWarm)?.demand.inputTokens ?? Number.NaN;

describe("a model request's demand on the input-tokens limit", () => {
  it("counts a short call's whole prompt even on a warm cache: the API caches no prefix that short", () => {
    expect(inputTokens(judgedCall, true)).toBe(inputTokens(judgedCall, false));
  });

  it("counts only what follows a long call's cached transcript on a warm cache", () => {
    const turn = "I would like to check the charges on my last statement, line by line, please. ".repeat(2);
    const longCall: Call = {
      ...judgedCall,
      transcript: Array.from({ length: 40 }, (_, i) => ({
        role: i % 2 === 0 ? ("AGENT" as const) : ("CUSTOMER" as const),
        text: turn,
        startOffsetMs: i * 5_000,
        endOffsetMs: i * 5_000 + 4_000,
      })),
    };
    const cold = inputTokens(longCall, false);
    const warm = inputTokens(longCall, true);
    // 40 turns of ~160 characters: about 1,600 tokens of transcript, read from the cache.
    expect(cold - warm).toBeGreaterThan(1_500);
    expect(warm).toBeLessThan(cold / 4);
  });
});
