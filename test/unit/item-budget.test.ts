import { describe, expect, it } from "vitest";
import { deltaItem } from "../../shared/analytics/deltas.ts";
import { boundedLabelValue, labelsOf, MAX_LABEL_VALUE_CHARS, type RollupInput } from "../../shared/analytics/rollup.ts";
import type { MetricValue } from "../../shared/schemas/job.ts";
import { isStorableNumber } from "../../shared/schemas/metric-values.ts";
import {
  itemBytes,
  MAX_SEGMENT_EXCERPT_CHARS,
  storableValue,
  truncateText,
  VALUE_ITEM_BUDGET_BYTES,
} from "../../shared/store/item-budget.ts";
import { chunkUnits, SUBMISSION_UNITS_BUDGET_BYTES, type SubmissionUnit } from "../../shared/store/llm-submissions.ts";

/** CJK characters: one UTF-16 unit and three UTF-8 bytes each, the most bytes per character a schema limit allows. */
const wide = (length: number, seed = "語") => seed.repeat(length);

const base: MetricValue = {
  jobId: "job",
  callId: "call",
  metricDefinitionId: "metric",
  metricVersion: 1,
  computedAt: "2026-12-01T00:00:00.000Z",
  captureStatus: "SUCCESS",
  context: "SEGMENT_RANGE",
};

describe("value budgets", () => {
  it("keeps the largest value anything can produce within the item budget", () => {
    const segment = { id: "s0", text: wide(100_000), startOffsetMs: 0, endOffsetMs: 1 };
    const worst = storableValue({
      ...base,
      value: Array.from({ length: 500 }, (_, i) => wide(1_000, String.fromCharCode(0x4e00 + i))),
      valueReasoning: wide(100_000),
      errorMessage: wide(100_000),
      segment,
      fromSegment: segment,
      toSegment: segment,
      policyIds: Array.from({ length: 10 }, (_, i) => `policy-${i}-00000000-0000-0000-0000-000000000000`),
    });
    // Keys, entity and index attributes of a stored value take well under 1 KB.
    expect(itemBytes(worst as unknown as Record<string, unknown>) + 1024).toBeLessThanOrEqual(VALUE_ITEM_BUDGET_BYTES);
    expect(worst.fromSegment?.text).toHaveLength(MAX_SEGMENT_EXCERPT_CHARS);
    expect(worst.fromSegment?.text.endsWith("…")).toBe(true);
    expect(worst.fromSegment).toMatchObject({ id: "s0", startOffsetMs: 0, endOffsetMs: 1 });
  });

  it("leaves a value within its bounds as it is", () => {
    const value = { ...base, context: "CALL" as const, value: 4.5, valueReasoning: "short", confidence: 0.9 };
    expect(storableValue(value)).toEqual(value);
  });

  it("turns a number DynamoDB cannot hold into an ERROR that names it, keeping the billed usage", () => {
    const usage = {
      inputTokens: 10,
      outputTokens: 2,
      cacheCreationInputTokens: 0,
      cacheReadInputTokens: 0,
      thinkingTokens: 0,
    };
    expect(storableValue({ ...base, value: 1e126, usage, model: "m", valueReasoning: "big" })).toEqual({
      jobId: "job",
      callId: "call",
      metricDefinitionId: "metric",
      metricVersion: 1,
      computedAt: "2026-12-01T00:00:00.000Z",
      context: "CALL",
      captureStatus: "ERROR",
      errorMessage:
        "The value 1e+126 cannot be stored: numbers must be finite, with a magnitude between 1e-130 and 1e125 (or 0)",
      model: "m",
      usage,
    });
    expect(storableValue({ ...base, value: 1, confidence: Number.NaN }).errorMessage).toMatch(/^The value NaN /);
  });

  it("knows DynamoDB's number range", () => {
    for (const n of [0, -0, 1, -1, 1e-130, -1e-130, 9.99e125, -9.99e125]) expect(isStorableNumber(n)).toBe(true);
    for (const n of [1e126, -1e126, 1e-131, Number.NaN, Number.POSITIVE_INFINITY])
      expect(isStorableNumber(n)).toBe(false);
  });

  it("never cuts a character in half", () => {
    expect(truncateText("ab😀cd", 4)).toBe("ab…");
    expect(truncateText("abcdef", 4)).toBe("abc…");
    expect(truncateText("abcd", 4)).toBe("abcd");
  });
});

describe("label budgets", () => {
  const properties = Object.fromEntries(
    Array.from({ length: 50 }, (_, p) => [wide(124) + String(p).padStart(4, "0"), wide(1023) + String(p % 10)]),
  );
  const call = { agentId: wide(256), environmentId: wide(256), properties };

  it("bounds a label set at the schema's limits to a few tens of KB, values distinct", () => {
    const labels = labelsOf(call);
    expect(Object.keys(labels)).toHaveLength(52);
    expect(itemBytes(labels)).toBeLessThan(32 * 1024);
    for (const value of Object.values(labels)) expect(value.length).toBeLessThanOrEqual(MAX_LABEL_VALUE_CHARS);
    // Values that share their first 64 characters keep apart by their hash.
    expect(new Set(Object.values(properties).map(boundedLabelValue)).size).toBe(10);
    expect(labelsOf({ agentId: "agent-1", properties: { region: "EU" } })).toEqual({
      region: "EU",
      agentId: "agent-1",
    });
  });

  it("stores in a rollup delta the label set's id, not its labels: 24 values of 24 such calls stay under 4 KB", () => {
    const inputs: RollupInput[] = Array.from({ length: 24 }, (_, n) => ({
      orgId: "org",
      slug: "duration",
      outputType: "NUMERIC",
      histogram: false,
      labels: labelsOf({ ...call, agentId: `${wide(250)}${n}` }),
      at: new Date(Date.UTC(2026, 11, 1, 0, n)).toISOString(),
      numeric: n,
    }));
    const item = deltaItem(
      "org",
      inputs.map((_, n) => `value-${n}`),
      inputs,
    );
    expect(itemBytes(item)).toBeLessThan(4 * 1024);
  });
});

describe("batch submission budgets", () => {
  it("cuts the largest items a job can hold into submissions that each stay far below 400 KB", () => {
    // Ids at the schema's limit (256 characters) of three-byte characters, 20 metrics per call.
    const units: SubmissionUnit[] = Array.from({ length: 1000 }, (_, n) => ({
      callId: `${wide(250)}${String(n).padStart(6, "0")}`,
      metrics: Array.from({ length: 20 }, (_, m) => ({ id: `${wide(250)}${m}`, version: 999_999, failedAttempts: 4 })),
    }));
    const chunks = chunkUnits(units);
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.flat()).toEqual(units);
    for (const chunk of chunks) {
      const stored = {
        pk: `ORG#${"o".repeat(256)}#JOB#${"j".repeat(256)}`,
        sk: "SUBMISSION#0123456789abcdef0123",
        gsi1sk: "x".repeat(600),
        units: chunk,
      };
      expect(itemBytes(stored)).toBeLessThan(SUBMISSION_UNITS_BUDGET_BYTES + 4 * 1024);
    }
    expect(SUBMISSION_UNITS_BUDGET_BYTES + 4 * 1024).toBeLessThan(400 * 1024);
  });
});
