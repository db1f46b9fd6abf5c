import { describe, expect, it } from "vitest";
import { createCallSchema } from "../../shared/schemas/call.ts";
import { createJobSchema, MAX_CALLS_PER_JOB, MAX_JOB_METADATA_BYTES } from "../../shared/schemas/job.ts";
import { createMetricSchema, updateMetricSchema } from "../../shared/schemas/metric.ts";

const fieldsOf = (result: { error?: { issues: { path: PropertyKey[] }[] } }) =>
  (result.error?.issues ?? []).map((issue) => issue.path.join("."));

const judge = { slug: "m", name: "M", calculationType: "LLM_JUDGE", llmPrompt: "Was it good?" };

describe("metric definition schema", () => {
  it("accepts every LLM_JUDGE output type with its fields and fills defaults", () => {
    const valid = [
      { ...judge, outputType: "BOOLEAN", booleanTrueLabel: "yes", booleanFalseLabel: "no" },
      { ...judge, outputType: "NUMERIC", unit: { name: "seconds", symbol: "s" } },
      { ...judge, outputType: "SCALE", scaleMin: 1, scaleMax: 5, scaleLabels: { "1": "bad", "5": "great" } },
      { ...judge, outputType: "CLASSIFICATION", classificationOptions: ["a", "b"], maxClassifications: 2 },
      { ...judge, outputType: "TEXT" },
      { ...judge, outputType: "COUNT" },
      { ...judge, outputType: "OFFSET", model: "claude-haiku-4-5" },
    ];
    for (const definition of valid) {
      const result = createMetricSchema.safeParse(definition);
      expect(result.error).toBeUndefined();
      expect(result.data).toMatchObject({ description: "", supportedContexts: ["CALL"] });
    }
  });

  it("names the field that is wrong", () => {
    const noPrompt = { ...judge, outputType: "BOOLEAN", llmPrompt: undefined };
    expect(fieldsOf(createMetricSchema.safeParse(noPrompt))).toEqual(["llmPrompt"]);
    expect(fieldsOf(createMetricSchema.safeParse({ ...judge, outputType: "SCALE" }))).toEqual(["scaleMin"]);
    expect(fieldsOf(createMetricSchema.safeParse({ ...judge, outputType: "SCALE", scaleMin: 5, scaleMax: 1 }))).toEqual(
      ["scaleMax"],
    );
    const labelOutside = { ...judge, outputType: "SCALE", scaleMin: 1, scaleMax: 5, scaleLabels: { "7": "x" } };
    expect(fieldsOf(createMetricSchema.safeParse(labelOutside))).toEqual(["scaleLabels"]);
    expect(fieldsOf(createMetricSchema.safeParse({ ...judge, outputType: "TEXT", scaleLabels: { "1": "x" } }))).toEqual(
      ["scaleLabels"],
    );
    expect(fieldsOf(createMetricSchema.safeParse({ ...judge, outputType: "CLASSIFICATION" }))).toEqual([
      "classificationOptions",
    ]);
    const tooMany = {
      ...judge,
      outputType: "CLASSIFICATION",
      classificationOptions: ["a", "b"],
      maxClassifications: 3,
    };
    expect(fieldsOf(createMetricSchema.safeParse(tooMany))).toEqual(["maxClassifications"]);
    const builtInText = {
      slug: "b",
      name: "B",
      calculationType: "BUILT_IN",
      outputType: "TEXT",
      builtIn: { kind: "TURN_COUNT" },
    };
    expect(fieldsOf(createMetricSchema.safeParse(builtInText))).toEqual(["outputType"]);
    expect(fieldsOf(createMetricSchema.safeParse({ ...judge, outputType: "TEXT", slug: "Bad Slug" }))).toEqual([
      "slug",
    ]);
    expect(fieldsOf(createMetricSchema.safeParse({ ...judge, outputType: "TEXT", extra: 1 }))).toEqual([""]);
  });

  it("takes partial updates but not empty ones", () => {
    expect(updateMetricSchema.safeParse({ llmPrompt: "New?" }).success).toBe(true);
    expect(updateMetricSchema.safeParse({}).success).toBe(false);
    expect(updateMetricSchema.parse({ name: "x" })).toEqual({ name: "x" });
  });
});

describe("call and job schemas", () => {
  const call = { agentId: "a", startedAt: "2026-11-01T10:00:00Z" };
  it("fills call defaults and rejects an end before the start", () => {
    expect(createCallSchema.parse(call)).toMatchObject({ transcript: [], properties: {}, callDirection: "INBOUND" });
    expect(fieldsOf(createCallSchema.safeParse({ ...call, endedAt: "2026-11-01T09:00:00Z" }))).toEqual(["endedAt"]);
    const badSegment = { ...call, transcript: [{ role: "BOT", text: "", startOffsetMs: -1, endOffsetMs: 0 }] };
    expect(fieldsOf(createCallSchema.safeParse(badSegment))).toEqual([
      "transcript.0.role",
      "transcript.0.startOffsetMs",
    ]);
  });

  it("bounds jobs: at least one call and metric, at most the documented limits", () => {
    expect(createJobSchema.safeParse({ callIds: ["c"], metrics: [{ id: "m" }] }).success).toBe(true);
    expect(fieldsOf(createJobSchema.safeParse({ callIds: [], metrics: [{ id: "m" }] }))).toEqual(["callIds"]);
    const tooMany = {
      callIds: Array.from({ length: MAX_CALLS_PER_JOB + 1 }, (_, i) => `c${i}`),
      metrics: [{ id: "m" }],
    };
    expect(fieldsOf(createJobSchema.safeParse(tooMany))).toEqual(["callIds"]);
  });

  it("bounds job metadata by entries and by total size, so the job item stays small", () => {
    const job = (metadata: Record<string, string>) => ({ callIds: ["c"], metrics: [{ id: "m" }], metadata });
    // 50 entries of 1,024 CJK characters: within each entry's limits, 150 KB in all.
    const heavy = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`key-${i}`, "語".repeat(1024)]));
    const refused = createJobSchema.safeParse(job(heavy));
    expect(fieldsOf(refused)).toEqual(["metadata"]);
    expect(refused.error?.issues[0]?.message).toBe("at most 8 KB of metadata (as JSON, UTF-8)");
    // Entries of up to 1,024 characters filling exactly the limit, then one byte more.
    const bytes = (metadata: object) => Buffer.byteLength(JSON.stringify(metadata));
    const atLimit: Record<string, string> = {};
    for (let i = 0; bytes(atLimit) < MAX_JOB_METADATA_BYTES; i++) {
      const room = MAX_JOB_METADATA_BYTES - bytes({ ...atLimit, [`k${i}`]: "" });
      atLimit[`k${i}`] = "x".repeat(Math.min(1024, room));
    }
    expect(bytes(atLimit)).toBe(MAX_JOB_METADATA_BYTES);
    expect(createJobSchema.safeParse(job(atLimit)).success).toBe(true);
    expect(createJobSchema.safeParse(job({ ...atLimit, k0: `${atLimit.k0?.slice(1)}éé` })).success).toBe(false);
  });
});
