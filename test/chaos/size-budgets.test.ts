/**
 * Nothing a tenant sends can break a write: calls at every limit of the call schema and
 * values DynamoDB cannot hold go through whole jobs on the real local engines, next to
 * another organization's job, and every job ends with exact counts.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHandler } from "../../functions/workers/evaluator.ts";
import { indexedLabelSets } from "../../shared/analytics/index-store.ts";
import { MAX_LABEL_VALUE_CHARS } from "../../shared/analytics/rollup.ts";
import { defaultEvaluatorDeps } from "../../shared/pipeline/evaluate.ts";
import { evaluateByCalculationType } from "../../shared/pipeline/evaluators.ts";
import type { CreateCallInput } from "../../shared/schemas/call.ts";
import { MAX_SEGMENT_EXCERPT_CHARS } from "../../shared/store/item-budget.ts";
import {
  builtInMetric,
  createJob,
  createMetrics,
  expectCountsMatchValues,
  jobValues,
  llmMetric,
  sampleCall,
  standardMetrics,
} from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitForJobEnd, waitForRollups } from "../support/stack.ts";

/** Text of `length` UTF-16 units, each a CJK character (3 bytes in UTF-8), random so it hardly compresses. */
function cjkText(length: number): string {
  const codes = randomBytes(length * 2);
  let text = "";
  for (let i = 0; i < length; i++) text += String.fromCharCode(0x4e00 + (codes.readUInt16LE(i * 2) % 20_000));
  return text;
}

const SEGMENTS = 16;
const SEGMENT_CHARS = 100_000;

/** A call at the schema's limits: 50 properties of 128-character names and 1,024-character values, ids at 256 characters, and a transcript of 100,000-character segments as large as the API takes. */
function callAtLimits(index: number): CreateCallInput {
  const properties = Object.fromEntries(
    Array.from({ length: 50 }, (_, p) => [`${cjkText(124)}${String(p).padStart(4, "0")}`, cjkText(1024)]),
  );
  return sampleCall(
    {
      externalId: `${cjkText(250)}-${index}-${Date.now()}`.slice(0, 256),
      agentId: cjkText(256),
      environmentId: cjkText(256),
      properties,
      transcript: Array.from({ length: SEGMENTS }, (_, s) => ({
        role: s % 2 ? ("CUSTOMER" as const) : ("AGENT" as const),
        // The first and last segments mention "refund", so a judgment spans the whole call.
        text: `${s === 0 || s === SEGMENTS - 1 ? "refund sorry " : ""}${cjkText(SEGMENT_CHARS - 13)}`,
        startOffsetMs: s * 10_000,
        endOffsetMs: s * 10_000 + 9_000,
      })),
    },
    index,
  );
}

const judged = [
  llmMetric("refund-asked", "BOOLEAN", 'Did the customer ask for a "refund"?'),
  llmMetric("refund-quote", "TEXT", 'Quote what was said about the "refund".'),
  llmMetric("first-sorry", "OFFSET", 'Point at the first "sorry".'),
];

describe("size and value budgets", { timeout: 240_000 }, () => {
  let stack: TestStack;
  beforeAll(async () => {
    /** NUMERIC definitions whose slug starts with "odd-" answer what DynamoDB cannot store. */
    const oddValues = [1e200, Number.NaN, Number.NEGATIVE_INFINITY, 1e-200];
    let odd = 0;
    const evaluator = createHandler({
      ...defaultEvaluatorDeps,
      evaluate: async (definition, call) => {
        if (!definition.slug.startsWith("odd-")) return evaluateByCalculationType(definition, call);
        return { captureStatus: "SUCCESS", context: "CALL", value: oddValues[odd++ % oddValues.length] };
      },
    });
    stack = await startTestStack({
      // Each call here is judged from a ~5 MB request: invocations take seconds.
      queueOverrides: { work: { visibilityTimeoutSeconds: 120, maxReceiveCount: 3 } },
      runtime: { handlerOverrides: { evaluator } },
    });
  });
  afterAll(() => stack?.stop());

  it("finishes jobs of calls at every schema limit, and another organization's job in the same batches", async () => {
    const callIds: string[] = [];
    for (const index of [0, 1]) {
      const { status, body } = await stack.api("POST", "/v1/call", callAtLimits(index));
      expect(status, JSON.stringify(body).slice(0, 300)).toBe(201);
      callIds.push(body.data.id);
    }
    const metrics = await createMetrics(stack.api, [...standardMetrics, ...judged]);
    const other = await stack.newOrganization("Neighbour");
    const [created, theirs] = await Promise.all([
      stack.api("POST", "/v1/metric/collection-jobs", { callIds, metrics: metrics.map(({ id }) => ({ id })) }),
      createJob(other.api, 10, standardMetrics, "neighbour"),
    ]);
    expect(created.status).toBe(201);
    const [mine, theirJob] = await Promise.all([
      waitForJobEnd(stack.api, created.body.data.id),
      waitForJobEnd(other.api, theirs.jobId),
    ]);
    expect(mine).toMatchObject({ status: "COMPLETED", totalItems: 12, completedItems: 12, failedItems: 0 });
    expect(theirJob).toMatchObject({ status: "COMPLETED", totalItems: 30, completedItems: 30, failedItems: 0 });
    await expectCountsMatchValues(other.api, theirJob);
    const values = await expectCountsMatchValues(stack.api, mine);

    // Values keep references to the segments they rest on, with a bounded excerpt of each.
    const refund = values.filter((value) => value.slug === judged[0]?.slug);
    expect(refund.map((value) => value.context)).toEqual(["SEGMENT_RANGE", "SEGMENT_RANGE"]);
    for (const value of values) {
      for (const ref of [value.segment, value.fromSegment, value.toSegment].filter(Boolean)) {
        expect(ref.text.length).toBeLessThanOrEqual(MAX_SEGMENT_EXCERPT_CHARS);
        expect(ref.text.startsWith("refund sorry ")).toBe(true);
      }
    }
    expect(refund[0]?.fromSegment).toMatchObject({ id: "s0", startOffsetMs: 0, endOffsetMs: 9_000 });
    expect(refund[0]?.toSegment).toMatchObject({ id: `s${SEGMENTS - 1}`, startOffsetMs: 150_000 });

    // The analytics label set of each call is bounded too: long values are kept as a prefix and a hash.
    await waitForRollups();
    const labelSets = await indexedLabelSets(stack.orgId, standardMetrics[0]?.slug ?? "");
    expect(labelSets).toHaveLength(2);
    for (const { labels } of labelSets) {
      expect(Object.keys(labels)).toHaveLength(52);
      for (const value of Object.values(labels)) expect(value.length).toBeLessThanOrEqual(MAX_LABEL_VALUE_CHARS);
    }
    // Two calls whose values share a prefix stay apart.
    expect(labelSets[0]?.labels.agentId).not.toBe(labelSets[1]?.labels.agentId);
  });

  it("stores a metric definition at every limit of its schema, few-shot examples included", async () => {
    const labels = Array.from({ length: 50 }, (_, i) => `${cjkText(196)}${String(i).padStart(4, "0")}`);
    const definition = {
      slug: `limits-${Date.now()}`,
      name: cjkText(200),
      description: cjkText(2000),
      calculationType: "LLM_JUDGE",
      outputType: "CLASSIFICATION",
      llmPrompt: cjkText(20_000),
      classificationOptions: labels,
      maxClassifications: 50,
      include: Array.from({ length: 20 }, (_, i) => `properties.${cjkText(124)}${String(i).padStart(4, "0")}`),
      examples: Array.from({ length: 5 }, () => ({ excerpt: cjkText(2000), value: labels, reasoning: cjkText(500) })),
    };
    const created = await stack.api("POST", "/v1/metric/definitions", definition);
    expect(created.status).toBe(201);
    const read = await stack.api("GET", `/v1/metric/definitions/${created.body.data.id}`);
    expect(read.body.data).toMatchObject({ examples: definition.examples, llmPrompt: definition.llmPrompt });
    const updated = await stack.api("PUT", `/v1/metric/definitions/${created.body.data.id}`, {
      description: cjkText(2000),
    });
    expect(updated.status).toBe(200);
    expect(updated.body.data.version).toBe(2);
  });

  it("records a value DynamoDB cannot hold (beyond 1e125, NaN, infinite, below 1e-130) as ERROR that says so", async () => {
    const [calls, [odd]] = await Promise.all([
      Promise.all([0, 1, 2, 3].map((i) => stack.api("POST", "/v1/call", sampleCall({}, i)))),
      createMetrics(stack.api, [builtInMetric("odd-number", { kind: "CALL_DURATION" })]),
    ]);
    const metrics = await createMetrics(stack.api, [builtInMetric("plain-duration", { kind: "CALL_DURATION" })]);
    const created = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds: calls.map((call) => call.body.data.id),
      metrics: [{ id: odd?.id }, { id: metrics[0]?.id }],
    });
    const job = await waitForJobEnd(stack.api, created.body.data.id);
    expect(job).toMatchObject({ status: "COMPLETED", totalItems: 8, completedItems: 4, failedItems: 4 });
    const values = await jobValues(stack.api, job.id);
    const errors = values.filter((value) => value.captureStatus === "ERROR").map((value) => value.errorMessage);
    expect(errors.sort()).toEqual([
      "The value -Infinity cannot be stored: numbers must be finite, with a magnitude between 1e-130 and 1e125 (or 0)",
      "The value 1e+200 cannot be stored: numbers must be finite, with a magnitude between 1e-130 and 1e125 (or 0)",
      "The value 1e-200 cannot be stored: numbers must be finite, with a magnitude between 1e-130 and 1e125 (or 0)",
      "The value NaN cannot be stored: numbers must be finite, with a magnitude between 1e-130 and 1e125 (or 0)",
    ]);
    expect(values.filter((value) => value.slug === "plain-duration").map((value) => value.value)).toEqual([
      60_000, 60_000, 60_000, 60_000,
    ]);
  });
});
