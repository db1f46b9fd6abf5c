/**
 * Jobs over transcripts sent with the job (CollieAI-style): stored only for the job's
 * lifetime (a TTL, unlisted, matched by no policy), judged and estimated like stored calls.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keys } from "../../shared/keys.ts";
import { INLINE_CALL_RETENTION_SECONDS, MAX_INLINE_CALLS_PER_JOB } from "../../shared/schemas/job.ts";
import { table } from "../../shared/store/table.ts";
import { builtInMetric, createCalls, createMetrics, jobValues, llmMetric, sampleCall } from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitForJobEnd } from "../support/stack.ts";

describe("jobs over inline transcripts", () => {
  let stack: TestStack;
  let metrics: { id: string }[];
  beforeAll(async () => {
    stack = await startTestStack();
    metrics = (
      await createMetrics(stack.api, [
        builtInMetric("inline-turns", { kind: "TURN_COUNT" }, "COUNT"),
        llmMetric("inline-refund", "BOOLEAN", 'Did the customer ask for a "refund"?'),
      ])
    ).map(({ id }) => ({ id }));
  });
  afterAll(() => stack?.stop());

  it("judges calls sent with the job beside stored ones, keeps them for the job only, and lists none of them", async () => {
    const [storedId] = await createCalls(stack.api, 1);
    const inline = [
      sampleCall({ externalId: "chat-1", agentId: "chat-agent" }, 1),
      {
        ...sampleCall({ agentId: "chat-agent" }, 2),
        transcript: [{ role: "CUSTOMER", text: "Where is my parcel?", startOffsetMs: 0, endOffsetMs: 1000 }],
      },
    ];
    const created = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds: [storedId],
      calls: inline,
      metrics,
    });
    expect(created.status).toBe(201);
    expect(created.body.data).toMatchObject({ callCount: 3, totalItems: 6 });
    const job = await waitForJobEnd(stack.api, created.body.data.id);
    expect(job).toMatchObject({ status: "COMPLETED", completedItems: 6, failedItems: 0 });

    const values = await jobValues(stack.api, job.id);
    const inlineIds = [...new Set(values.map((v) => v.callId))].filter((id) => id !== storedId);
    expect(inlineIds).toHaveLength(2);
    const byCall = async (callId: string) => (await stack.api("GET", `/v1/call/${callId}`)).body.data;
    const [first, second] = await Promise.all(inlineIds.map(byCall));
    const parcel = [first, second].find((call) => call.transcript.length === 1);
    const refund = [first, second].find((call) => call.transcript.length === 4);
    expect(refund).toMatchObject({ agentId: "chat-agent", externalId: "chat-1" });
    const judged = (callId: string, metricId: string) =>
      values.find((v) => v.callId === callId && v.metricDefinitionId === metricId)?.value;
    expect(judged(refund.id, metrics[0]!.id)).toBe(4);
    expect(judged(refund.id, metrics[1]!.id)).toBe(true);
    expect(judged(parcel.id, metrics[0]!.id)).toBe(1);
    expect(judged(parcel.id, metrics[1]!.id)).toBe(false);

    // Not in the call list, nor found by externalId; deleted by TTL after the job's retention.
    const listed = (await stack.api("GET", "/v1/call?limit=100")).body.data.map((call: { id: string }) => call.id);
    expect(listed).toContain(storedId);
    for (const id of inlineIds) expect(listed).not.toContain(id);
    expect((await stack.api("GET", "/v1/call?externalId=chat-1")).body.data).toEqual([]);
    const stored = await table.get(keys.call(stack.orgId, refund.id));
    expect(stored?.gsi1pk).toBeUndefined();
    expect(stored?.entity).toBe("InlineCall");
    const ttl = Number(stored?.expiresAt) - Math.floor(Date.now() / 1000);
    expect(Math.abs(ttl - INLINE_CALL_RETENTION_SECONDS)).toBeLessThan(120);
  });

  it("estimates inline calls as it estimates the same calls stored", async () => {
    const calls = [sampleCall({}, 3), sampleCall({}, 4)];
    const storedIds = await Promise.all(
      calls.map(async (call) => (await stack.api("POST", "/v1/call", call)).body.data.id as string),
    );
    const byIds = await stack.api("POST", "/v1/metric/collection-jobs/estimate", { callIds: storedIds, metrics });
    const inline = await stack.api("POST", "/v1/metric/collection-jobs/estimate", { calls, metrics });
    expect(inline.status).toBe(200);
    expect(inline.body.data.estimatedCostUsd.low).toBeGreaterThan(0);
    expect(inline.body.data).toEqual(byIds.body.data);
    const callsAfter = (await stack.api("GET", "/v1/call?limit=100")).body.data.length;
    expect((await stack.api("POST", "/v1/metric/collection-jobs/estimate", { calls, metrics })).status).toBe(200);
    expect((await stack.api("GET", "/v1/call?limit=100")).body.data).toHaveLength(callsAfter);
  });

  it("answers 400 for a job without calls, too many inline calls, or an invalid one", async () => {
    const none = await stack.api("POST", "/v1/metric/collection-jobs", { metrics });
    expect(none.status).toBe(400);
    expect(none.body.error.details).toEqual([expect.objectContaining({ field: "body.callIds" })]);
    const many = Array.from({ length: MAX_INLINE_CALLS_PER_JOB + 1 }, (_, i) => sampleCall({}, i));
    const tooMany = await stack.api("POST", "/v1/metric/collection-jobs", { calls: many, metrics });
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.error.details).toEqual([expect.objectContaining({ field: "body.calls" })]);
    const invalid = await stack.api("POST", "/v1/metric/collection-jobs", {
      calls: [{ ...sampleCall(), agentId: "" }],
      metrics,
    });
    expect(invalid.status).toBe(400);
    expect(invalid.body.error.details).toEqual([expect.objectContaining({ field: "body.calls.0.agentId" })]);
  });
});
