/**
 * Grouped judging through whole jobs on the local engines (DynamoDB Local, the SQS emulator,
 * the fake Anthropic server): a job's `judgeMode`, a definition that refuses grouping, the
 * same values as isolated judging, usage that adds up to what the fake server billed, and
 * one invalid answer field failing only its own item.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { billedUsage, builtInMetric, createCalls, createMetrics, jobValues, llmMetric } from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitForJobEnd } from "../support/stack.ts";

const metricsOf = (tag: string) => [
  llmMetric(`refund-asked-${tag}`, "BOOLEAN", 'Did the customer ask for a "refund"?'),
  llmMetric(`empathy-${tag}`, "SCALE", 'How empathetic was the agent ("sorry")?', { scaleMin: 1, scaleMax: 5 }),
  llmMetric(`sorry-turns-${tag}`, "COUNT", 'In how many turns is "sorry" said?'),
  llmMetric(`refund-quote-${tag}`, "TEXT", 'Quote what was said about the "refund".', { isolated: true }),
  builtInMetric(`turns-${tag}`, { kind: "TURN_COUNT" }, "COUNT"),
];

describe("grouped judging on the local engines", { timeout: 120_000 }, () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(() => stack?.stop());
  beforeEach(() => {
    stack.anthropic.reset();
    stack.anthropic.configure({ fault: undefined });
  });

  async function runJob(callIds: string[], metrics: { id: string }[], judgeMode?: string) {
    const created = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds,
      metrics: metrics.map((m) => ({ id: m.id })),
      ...(judgeMode ? { judgeMode } : {}),
    });
    expect(created.status).toBe(201);
    expect(created.body.data.judgeMode).toBe(judgeMode ?? "isolated");
    return waitForJobEnd(stack.api, created.body.data.id, 90_000);
  }

  const billed = () => billedUsage(stack.anthropic.requests());

  it("judges a call's questions in one request, with the values isolated judging gives", async () => {
    const callIds = await createCalls(stack.api, 4);
    const metrics = await createMetrics(stack.api, metricsOf("grouped"));
    const isolatedJob = await runJob(callIds, metrics);
    const isolatedRequests = stack.anthropic.requests().length;
    expect(isolatedRequests).toBe(16);
    stack.anthropic.reset();

    const job = await runJob(callIds, metrics, "grouped");
    expect(job).toMatchObject({ status: "COMPLETED", totalItems: 20, completedItems: 20, failedItems: 0 });
    const served = stack.anthropic.requests();
    // The refund quote refuses grouping: alone, once per call. The other three go together,
    // one request per call unless a call's items straddle two SQS batches.
    expect(served.filter((r) => r.questions === 1).length).toBeGreaterThanOrEqual(4);
    expect(served.filter((r) => r.questions > 1).length).toBeGreaterThanOrEqual(4);
    expect(served.length).toBeLessThan(isolatedRequests);
    expect(job.usage).toEqual(billed());

    const verdicts = async (jobId: string) =>
      (await jobValues(stack.api, jobId))
        .map(({ callId, slug, captureStatus, value, context, segment, fromSegment, toSegment }) =>
          JSON.stringify({ callId, slug, captureStatus, value, context, segment, fromSegment, toSegment }),
        )
        .sort();
    expect(await verdicts(job.id)).toEqual(await verdicts(isolatedJob.id));
  });

  it("fails only the item whose answer field is invalid, after its own corrective retry", async () => {
    const callIds = await createCalls(stack.api, 2);
    const metrics = await createMetrics(stack.api, metricsOf("bad-field").slice(0, 3));
    // Every grouped answer's first field is malformed, and so is every isolated answer.
    stack.anthropic.configure({ fault: () => "malformed_always" });
    const job = await runJob(callIds, metrics, "grouped");
    expect(job).toMatchObject({ status: "COMPLETED", totalItems: 6 });
    const values = await jobValues(stack.api, job.id);
    const failed = values.filter((v) => v.captureStatus === "ERROR");
    expect(failed.map((v) => v.slug).sort()).toEqual([metrics[0]?.slug, metrics[0]?.slug]);
    expect(failed[0]?.errorMessage).toMatch(/invalid twice/);
    expect(values.filter((v) => v.captureStatus === "SUCCESS")).toHaveLength(4);
    expect(job.failedItems).toBe(2);
    expect(job.usage).toEqual(billed());
    // A retry of the failed items keeps the job's judge mode.
    const retry = await stack.api("POST", `/v1/metric/collection-jobs/${job.id}/retry`);
    expect(retry.status).toBe(201);
    expect(retry.body.data).toMatchObject({ judgeMode: "grouped", totalItems: 2 });
    await waitForJobEnd(stack.api, retry.body.data.id, 90_000);
  });

  it("counts the grouped request's usage when an item's isolated fallback is rate-limited and the group runs again", async () => {
    const callIds = await createCalls(stack.api, 2);
    const metrics = await createMetrics(stack.api, metricsOf("fallback-429").slice(0, 3));
    // The first grouped answer has a malformed field; that item's isolated fallback is
    // rate-limited, so the whole group runs again: both grouped answers were billed.
    stack.anthropic.configure({
      fault: (r) => (r.attempt === 1 ? (r.questions > 1 ? "malformed" : "rate_limit") : undefined),
      retryAfterSeconds: 1,
    });
    const job = await runJob(callIds, metrics, "grouped");
    expect(job).toMatchObject({ status: "COMPLETED", totalItems: 6, completedItems: 6, failedItems: 0 });
    const served = stack.anthropic.requests();
    expect(served.filter((r) => r.status === 429).length).toBeGreaterThanOrEqual(1);
    expect(served.filter((r) => r.questions > 1 && r.status === 200).length).toBeGreaterThan(callIds.length);
    expect(job.usage).toEqual(billed());
  });

  it("rejects an unknown judge mode with a clear 400", async () => {
    const [callId] = await createCalls(stack.api, 1);
    const [metric] = await createMetrics(stack.api, metricsOf("mode").slice(0, 1));
    const response = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds: [callId],
      metrics: [{ id: metric?.id }],
      judgeMode: "together",
    });
    expect(response.status).toBe(400);
    expect(JSON.stringify(response.body)).toMatch(/judgeMode.*isolated.*grouped/);
  });
});
