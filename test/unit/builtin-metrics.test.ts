import { describe, expect, it } from "vitest";
import { demoCalls, demoMetricDefinitions } from "../../infra/local/demo-data.ts";
import { type BuiltInConfig, builtInConfigSchema, computeBuiltInMetric } from "../../shared/metrics/builtin.ts";
import type { TranscriptSegment } from "../../shared/schemas/call.ts";
import { createCallSchema } from "../../shared/schemas/call.ts";
import { createMetricSchema } from "../../shared/schemas/metric.ts";

const segment = (role: "AGENT" | "CUSTOMER", text: string, start: number, end: number): TranscriptSegment => ({
  role,
  text,
  startOffsetMs: start,
  endOffsetMs: end,
});

// Agent 0–4 s, customer 5–7 s (agent replies after 1 s), customer barges in at 9.5 s
// while the agent talks 8–12 s, agent replies 14–16 s after a customer turn ending 13 s.
const transcript = [
  segment("AGENT", "Hello, thanks for calling Acme support.", 0, 4000),
  segment("CUSTOMER", "Hi, my card was charged twice.", 5000, 7000),
  segment("AGENT", "I am sorry to hear that. Let me verify your identity.", 8000, 12_000),
  segment("CUSTOMER", "Sure, sorry, it is Jane.", 9500, 13_000),
  segment("AGENT", "Thank you Jane, I have refunded the duplicate charge.", 14_000, 16_000),
];
const call = { transcript, startedAt: "2026-01-01T10:00:00Z" };
const compute = (config: BuiltInConfig, input: Parameters<typeof computeBuiltInMetric>[1] = call) =>
  computeBuiltInMetric(config, input);
const value = (config: BuiltInConfig, input?: Parameters<typeof computeBuiltInMetric>[1]) => {
  const result = compute(config, input);
  if (result.status !== "SUCCESS") throw new Error(`expected SUCCESS, got ${result.status}: ${result.reasoning}`);
  return result.value;
};
const empty = { transcript: [], startedAt: "2026-01-01T10:00:00Z" };

describe("built-in metrics", () => {
  it("CALL_DURATION prefers durationMs, then endedAt − startedAt, then the transcript span", () => {
    expect(value({ kind: "CALL_DURATION" }, { ...call, durationMs: 61_000 })).toBe(61_000);
    expect(value({ kind: "CALL_DURATION" }, { ...call, endedAt: "2026-01-01T10:01:30Z" })).toBe(90_000);
    expect(value({ kind: "CALL_DURATION" })).toBe(16_000);
    expect(compute({ kind: "CALL_DURATION" }, empty).status).toBe("DATA_MISSING");
  });

  it("AGENT_TALK_RATIO is the agent's share of speech time in percent", () => {
    // agent 4+4+2 = 10 s, customer 2+3.5 = 5.5 s → 10 / 15.5 = 64.5 %
    expect(value({ kind: "AGENT_TALK_RATIO" })).toBe(64.5);
    expect(compute({ kind: "AGENT_TALK_RATIO" }, empty).status).toBe("DATA_MISSING");
    const silent = { ...call, transcript: [segment("AGENT", "", 1000, 1000)] };
    expect(compute({ kind: "AGENT_TALK_RATIO" }, silent).status).toBe("DATA_MISSING");
  });

  it("TURN_COUNT merges consecutive segments of one speaker", () => {
    expect(value({ kind: "TURN_COUNT" })).toBe(5);
    const merged = [
      segment("AGENT", "a", 0, 1000),
      segment("AGENT", "b", 1000, 2000),
      segment("CUSTOMER", "c", 2500, 3000),
    ];
    expect(value({ kind: "TURN_COUNT" }, { ...call, transcript: merged })).toBe(2);
    expect(compute({ kind: "TURN_COUNT" }, empty).status).toBe("DATA_MISSING");
  });

  it("response latency: customer turn end → next agent turn start, overlaps count 0", () => {
    // Replies: 7 s → 8 s = 1000 ms; 13 s → 14 s = 1000 ms.
    expect(value({ kind: "AGENT_RESPONSE_LATENCY_MEAN" })).toBe(1000);
    const slow = [
      segment("CUSTOMER", "q1", 0, 1000),
      segment("AGENT", "a1", 1200, 2000), // 200
      segment("CUSTOMER", "q2", 2000, 3000),
      segment("AGENT", "a2", 3400, 4000), // 400
      segment("CUSTOMER", "q3", 4000, 5000),
      segment("AGENT", "a3", 8000, 9000), // 3000
    ];
    const input = { ...call, transcript: slow };
    expect(value({ kind: "AGENT_RESPONSE_LATENCY_MEAN" }, input)).toBe(1200);
    expect(value({ kind: "AGENT_RESPONSE_LATENCY_P95" }, input)).toBe(3000);
    const agentOnly = { ...call, transcript: [segment("AGENT", "hello?", 0, 1000)] };
    expect(compute({ kind: "AGENT_RESPONSE_LATENCY_P95" }, agentOnly).status).toBe("DATA_MISSING");
  });

  it("INTERRUPTION_COUNT counts turns that start while the other speaker still talks", () => {
    expect(value({ kind: "INTERRUPTION_COUNT" })).toBe(1);
    const clean = transcript.filter((s) => s.startOffsetMs !== 9500);
    expect(value({ kind: "INTERRUPTION_COUNT" }, { ...call, transcript: clean })).toBe(0);
    expect(compute({ kind: "INTERRUPTION_COUNT" }, empty).status).toBe("DATA_MISSING");
  });

  it("WORDS_PER_MINUTE per role, agent by default", () => {
    // Agent: 6 + 11 + 9 = 26 words in 10 s → 156 wpm. Customer: 6 + 5 = 11 words in 5.5 s → 120 wpm.
    expect(value({ kind: "WORDS_PER_MINUTE" })).toBe(156);
    expect(value({ kind: "WORDS_PER_MINUTE", role: "CUSTOMER" })).toBe(120);
    const agentOnly = { ...call, transcript: [segment("AGENT", "hello", 0, 1000)] };
    expect(compute({ kind: "WORDS_PER_MINUTE", role: "CUSTOMER" }, agentOnly).status).toBe("DATA_MISSING");
  });

  it("KEYWORD_MATCH_COUNT counts whole words and phrases, case-insensitively, optionally per role", () => {
    expect(value({ kind: "KEYWORD_MATCH_COUNT", keywords: ["sorry"] })).toBe(2);
    expect(value({ kind: "KEYWORD_MATCH_COUNT", keywords: ["sorry"], role: "AGENT" })).toBe(1);
    expect(value({ kind: "KEYWORD_MATCH_COUNT", keywords: ["thank you", "THANKS"] })).toBe(2);
    // "charge" must not match inside "charged" but matches "charge" itself.
    expect(value({ kind: "KEYWORD_MATCH_COUNT", keywords: ["charge"] })).toBe(1);
    expect(value({ kind: "KEYWORD_MATCH_COUNT", pattern: "\\bverif\\w*", flags: "i" })).toBe(1);
    expect(
      value({ kind: "KEYWORD_MATCH_COUNT", pattern: "x*" }, { ...call, transcript: [segment("AGENT", "ab", 0, 1)] }),
    ).toBe(3);
    expect(compute({ kind: "KEYWORD_MATCH_COUNT", keywords: ["a"] }, empty).status).toBe("DATA_MISSING");
  });

  it("validates configurations", () => {
    expect(builtInConfigSchema.safeParse({ kind: "KEYWORD_MATCH_COUNT" }).success).toBe(false);
    expect(builtInConfigSchema.safeParse({ kind: "KEYWORD_MATCH_COUNT", keywords: ["a"], pattern: "a" }).success).toBe(
      false,
    );
    const badRegex = builtInConfigSchema.safeParse({ kind: "KEYWORD_MATCH_COUNT", pattern: "(" });
    expect(badRegex.error?.issues[0]?.message).toMatch(/invalid regular expression/);
    expect(builtInConfigSchema.safeParse({ kind: "KEYWORD_MATCH_COUNT", pattern: "a", flags: "g" }).success).toBe(
      false,
    );
    expect(builtInConfigSchema.safeParse({ kind: "NOPE" }).success).toBe(false);
    expect(builtInConfigSchema.safeParse({ kind: "TURN_COUNT", extra: 1 }).success).toBe(false);
  });
});

describe("demo data", () => {
  it("holds 20 valid calls, one with an empty transcript, and valid metric definitions", () => {
    const calls = demoCalls();
    const metrics = demoMetricDefinitions();
    expect(calls).toHaveLength(20);
    for (const demoCall of calls) expect(createCallSchema.safeParse(demoCall).error).toBeUndefined();
    expect(calls.filter((c) => (c.transcript ?? []).length === 0)).toHaveLength(1);
    expect(metrics.length).toBeGreaterThanOrEqual(3);
    for (const metric of metrics) expect(createMetricSchema.safeParse(metric).error).toBeUndefined();
  });
});
