/**
 * Deleting a call for a data-subject request: its items, its values in every job and its
 * rollup contributions go, exactly once whoever deletes it and however often; a value an
 * evaluator records after the deletion (it read the call before) is removed by the
 * scheduled follow-up pass.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keys } from "../../shared/keys.ts";
import { purgeLateCallValues } from "../../shared/store/call-deletion.ts";
import { queryAll } from "../../shared/store/query.ts";
import { table } from "../../shared/store/table.ts";
import { builtInMetric, createCalls, createMetrics, jobValues, llmMetric } from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitForJobEnd, waitForRollups } from "../support/stack.ts";

const range = "startDate=2026-03-01&endDate=2026-04-01";

describe("call deletion", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(() => stack?.stop());

  const callValueItems = (orgId: string, callId: string) =>
    queryAll({
      IndexName: "gsi1",
      KeyConditionExpression: "gsi1pk = :values",
      ExpressionAttributeValues: { ":values": keys.callValues(orgId, callId) },
    });

  it("deletes a call, its transcript, its externalId and its values in every job, and takes them out of analytics", async () => {
    const org = await stack.newOrganization("Deletes calls");
    const startedAt = (day: number) => `2026-03-0${day}T10:00:00Z`;
    const [keptId, deletedId] = [
      (await createCalls(org.api, 1, { externalId: "kept", startedAt: startedAt(2), durationMs: 10_000 }))[0]!,
      (await createCalls(org.api, 1, { externalId: "forgotten", startedAt: startedAt(3), durationMs: 30_000 }))[0]!,
    ];
    await createMetrics(org.api, [
      builtInMetric("del-dur", { kind: "CALL_DURATION" }),
      { ...builtInMetric("del-lat", { kind: "CALL_DURATION" }), histogram: true },
      builtInMetric("del-sorry", { kind: "KEYWORD_MATCH_COUNT", keywords: ["sorry"] }, "COUNT"),
    ]);
    const jobIds: string[] = [];
    for (const metrics of [["del-dur", "del-lat"], ["del-sorry"]]) {
      const created = await org.api("POST", "/v1/metric/collection-jobs", {
        callIds: [keptId, deletedId],
        metrics: metrics.map((id) => ({ id })),
      });
      expect((await waitForJobEnd(org.api, created.body.data.id)).status).toBe("COMPLETED");
      jobIds.push(created.body.data.id);
    }
    await waitForRollups();
    const before = await org.api("GET", `/v1/custom-metrics/aggregate?${range}`);
    expect(before.body.data).toMatchObject({ "del-dur": 20_000, "del-sorry": 4 });

    const other = await stack.newOrganization("Cannot delete others' calls");
    expect((await other.api("DELETE", `/v1/call/${deletedId}`)).status).toBe(404);

    // Two deletes at once (a client retrying): both answer, the values are subtracted once.
    const [deleted, twin] = await Promise.all([
      org.api("DELETE", `/v1/call/${deletedId}`),
      org.api("DELETE", `/v1/call/${deletedId}`),
    ]);
    expect([deleted.status, twin.status]).toEqual([200, 200]);
    expect(deleted.body.data).toEqual({ id: deletedId, deleted: true });

    expect((await org.api("GET", `/v1/call/${deletedId}`)).status).toBe(404);
    expect((await org.api("GET", `/v1/call/${deletedId}/metrics`)).status).toBe(404);
    expect((await org.api("GET", "/v1/call?externalId=forgotten")).body.data).toEqual([]);
    const listed = await org.api("GET", "/v1/call?limit=100");
    expect(listed.body.data.map((call: { id: string }) => call.id)).toEqual([keptId]);
    for (const jobId of jobIds) {
      const values = await jobValues(org.api, jobId);
      expect(values.length).toBeGreaterThan(0);
      expect(values.every((value: { callId: string }) => value.callId === keptId)).toBe(true);
    }
    expect(await callValueItems(org.orgId, deletedId)).toEqual([]);
    const { Items: left = [] } = await table.query({
      KeyConditionExpression: "pk = :pk",
      ExpressionAttributeValues: { ":pk": keys.callPartition(org.orgId, deletedId) },
    });
    // Only the tombstone: ids and when, never the transcript or properties.
    expect(left.map((item) => item.sk)).toEqual(["DELETED"]);
    expect(JSON.stringify(left)).not.toMatch(/refund|region|agent-support/);
    expect(await table.get(keys.callExternalId(org.orgId, "forgotten"))).toBeUndefined();

    await waitForRollups();
    const after = await org.api("GET", `/v1/custom-metrics/aggregate?${range}`);
    expect(after.body.data).toMatchObject({ "del-dur": 10_000, "del-sorry": 2 });
    expect(Math.abs(after.body.data["del-lat"] - 10_000) / 10_000).toBeLessThanOrEqual(0.01);

    // A retried DELETE answers the same and subtracts nothing again; the kept call is intact.
    const again = await org.api("DELETE", `/v1/call/${deletedId}`);
    expect(again.status).toBe(200);
    await waitForRollups();
    expect((await org.api("GET", `/v1/custom-metrics/aggregate?${range}`)).body.data).toEqual(after.body.data);
    expect((await org.api("GET", `/v1/call/${keptId}`)).status).toBe(200);

    const audit = await org.api("GET", "/v1/audit-events");
    expect(audit.body.data.map((event: { action: string }) => event.action)).toContain("call.deleted");
  });

  it("removes a value recorded after the deletion by an evaluator that had read the call before", async () => {
    const org = await stack.newOrganization("Deletes a call mid-job");
    const [callId] = (await createCalls(org.api, 1, { startedAt: "2026-03-05T10:00:00Z" })) as [string];
    await createMetrics(org.api, [llmMetric("del-refund", "BOOLEAN", 'Did the customer ask for a "refund"?')]);
    let judged = false;
    stack.anthropic.configure({
      latencyMs: 2_000,
      fault: () => {
        judged = true;
        return undefined;
      },
    });
    try {
      const created = await org.api("POST", "/v1/metric/collection-jobs", {
        callIds: [callId],
        metrics: [{ id: "del-refund" }],
      });
      await expect.poll(() => judged, { timeout: 30_000 }).toBe(true);
      expect((await org.api("DELETE", `/v1/call/${callId}`)).status).toBe(200);
      const job = await waitForJobEnd(org.api, created.body.data.id);
      expect(job.completedItems).toBe(1);
    } finally {
      stack.anthropic.configure({ latencyMs: 0, fault: () => undefined });
    }
    // The late value is there, and counted, until the follow-up pass.
    expect(await callValueItems(org.orgId, callId)).toHaveLength(1);
    await waitForRollups();
    expect((await org.api("GET", `/v1/custom-metrics/aggregate?${range}`)).body.data).toMatchObject({
      "del-refund": 1,
    });

    // Not before the late-value window has passed: an evaluator may still be recording.
    expect(await purgeLateCallValues(new Date())).toBe(0);
    const later = new Date(Date.now() + 20 * 60_000);
    expect(await purgeLateCallValues(later)).toBe(1);
    expect(await callValueItems(org.orgId, callId)).toEqual([]);
    await waitForRollups();
    // No value left: the metric has nothing to aggregate.
    expect((await org.api("GET", `/v1/custom-metrics/aggregate?${range}`)).body.data).toEqual({});
    // Each deletion gets one follow-up pass.
    expect(await purgeLateCallValues(later)).toBe(0);
  });
});
