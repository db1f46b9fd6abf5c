/** What expires on its own: an organization's calls and values after its retention period, a finished job's pages. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keys } from "../../shared/keys.ts";
import { table } from "../../shared/store/table.ts";
import { builtInMetric, createCalls, createMetrics } from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitForJobEnd } from "../support/stack.ts";

const DAY = 86_400;
const nowSeconds = () => Math.floor(Date.now() / 1000);

describe("retention", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(() => stack?.stop());

  it("writes an organization's calls, transcripts and values with its retention period", async () => {
    const org = await stack.newOrganization("Retains 30 days");
    await org.api("PUT", "/v1/organization/settings", { retentionDays: 30 });
    const [callId] = (await createCalls(org.api, 1, { externalId: "kept-30-days" })) as [string];
    await createMetrics(org.api, [builtInMetric("retained-turns", { kind: "TURN_COUNT" }, "COUNT")]);
    const created = await org.api("POST", "/v1/metric/collection-jobs", {
      callIds: [callId],
      metrics: [{ id: "retained-turns" }],
    });
    const job = await waitForJobEnd(org.api, created.body.data.id);
    expect(job.status).toBe("COMPLETED");

    const { Items: callItems = [] } = await table.query({
      KeyConditionExpression: "pk = :pk",
      ExpressionAttributeValues: { ":pk": keys.callPartition(org.orgId, callId) },
    });
    expect(callItems.length).toBeGreaterThanOrEqual(2);
    const externalId = await table.get(keys.callExternalId(org.orgId, "kept-30-days"));
    const { Items: values = [] } = await table.query({
      KeyConditionExpression: "pk = :pk AND begins_with(sk, :item)",
      ExpressionAttributeValues: { ":pk": keys.job(org.orgId, job.id).pk, ":item": "ITEM#" },
    });
    expect(values).toHaveLength(1);
    for (const item of [...callItems, externalId, ...values]) {
      expect(Number(item?.expiresAt)).toBeGreaterThan(nowSeconds() + 30 * DAY - 60);
      expect(Number(item?.expiresAt)).toBeLessThanOrEqual(nowSeconds() + 30 * DAY);
    }
    // The API never shows the expiry.
    expect((await org.api("GET", `/v1/call/${callId}`)).body.data.expiresAt).toBeUndefined();

    // Past its retention, a call is gone even before DynamoDB's TTL deletes its items.
    await table.update({
      Key: keys.call(org.orgId, callId),
      UpdateExpression: "SET expiresAt = :past",
      ExpressionAttributeValues: { ":past": nowSeconds() - 1 },
    });
    expect((await org.api("GET", `/v1/call/${callId}`)).status).toBe(404);
  });

  it("keeps an organization's data without a retention period, and lets a finished job's pages expire", async () => {
    const [callId] = (await createCalls(stack.api, 1)) as [string];
    await createMetrics(stack.api, [builtInMetric("kept-turns", { kind: "TURN_COUNT" }, "COUNT")]);
    const created = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds: [callId],
      metrics: [{ id: "kept-turns" }],
    });
    const job = await waitForJobEnd(stack.api, created.body.data.id);
    expect((await table.get(keys.call(stack.orgId, callId)))?.expiresAt).toBeUndefined();
    await expect
      .poll(async () => Number((await table.get(keys.jobPage(stack.orgId, job.id, 0)))?.expiresAt ?? 0), {
        timeout: 30_000,
      })
      .toBeGreaterThan(nowSeconds() + 6 * DAY);
    expect((await table.get(keys.job(stack.orgId, job.id)))?.expiresAt).toBeUndefined();
  });
});
