/** Admins manage their organization's API keys through the API (create, list, revoke) and read the audit trail. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashApiKey } from "../../shared/auth.ts";
import { keys } from "../../shared/keys.ts";
import { table } from "../../shared/store/table.ts";
import { builtInMetric } from "../support/fixtures.ts";
import { startTestStack, type TestStack } from "../support/stack.ts";

describe("API keys through the API", () => {
  let stack: TestStack;
  let adminKeyId: string;
  beforeAll(async () => {
    stack = await startTestStack();
    adminKeyId = (await stack.api("GET", "/v1/me")).body.data.keyId;
  });
  afterAll(() => stack?.stop());

  it("creates a key whose secret is shown once and stored only as its hash", async () => {
    const created = await stack.api("POST", "/v1/api-keys", { name: "reporting", role: "read-only" });
    expect(created.status).toBe(201);
    const { apiKey, id } = created.body.data;
    expect(created.body.data).toMatchObject({ name: "reporting", role: "read-only", createdBy: adminKeyId });
    expect((await stack.client(apiKey)("GET", "/v1/me")).body.data).toEqual({
      orgId: stack.orgId,
      role: "read-only",
      keyId: id,
    });
    const stored = await table.get(keys.apiKey(hashApiKey(apiKey)));
    expect(JSON.stringify(stored)).not.toContain(apiKey);

    const listed = await stack.api("GET", "/v1/api-keys");
    expect(listed.status).toBe(200);
    expect(listed.body.data[0]).toEqual({
      id,
      name: "reporting",
      role: "read-only",
      createdAt: created.body.data.createdAt,
      createdBy: adminKeyId,
    });
    expect(listed.body.data.map((key: { id: string }) => key.id)).toContain(adminKeyId);
  });

  it("revokes a key: refused at once, listed as revoked, revoking again changes nothing", async () => {
    const { apiKey, id } = (await stack.api("POST", "/v1/api-keys", { name: "leaked", role: "member" })).body.data;
    expect((await stack.client(apiKey)("GET", "/v1/call")).status).toBe(200);
    const revoked = await stack.api("DELETE", `/v1/api-keys/${id}`);
    expect(revoked.status).toBe(200);
    expect(revoked.body.data).toMatchObject({ id, revokedBy: adminKeyId });
    expect((await stack.client(apiKey)("GET", "/v1/call")).status).toBe(401);
    const again = await stack.api("DELETE", `/v1/api-keys/${id}`);
    expect(again.body.data.revokedAt).toBe(revoked.body.data.revokedAt);
    const listed = (await stack.api("GET", "/v1/api-keys")).body.data;
    expect(listed.find((key: { id: string }) => key.id === id).revokedAt).toBe(revoked.body.data.revokedAt);
  });

  it("never revokes the key making the request, nor another organization's", async () => {
    const own = await stack.api("DELETE", `/v1/api-keys/${adminKeyId}`);
    expect(own.status).toBe(409);
    expect((await stack.api("GET", "/v1/me")).status).toBe(200);
    const other = await stack.newOrganization("Keys neighbour");
    const theirs = (await other.api("GET", "/v1/me")).body.data.keyId;
    expect((await stack.api("DELETE", `/v1/api-keys/${theirs}`)).status).toBe(404);
    expect((await other.api("GET", "/v1/me")).status).toBe(200);
    expect((await stack.api("GET", "/v1/api-keys")).body.data.map((key: { id: string }) => key.id)).not.toContain(
      theirs,
    );
  });

  it("refuses a key without a name or with an unknown role", async () => {
    for (const body of [{ role: "admin" }, { name: "x", role: "owner" }]) {
      const response = await stack.api("POST", "/v1/api-keys", body);
      expect(response.status).toBe(400);
    }
  });

  it("records who created, changed and deleted definitions, policies, backfills and keys", async () => {
    const other = await stack.newOrganization("Audit neighbour");
    const { apiKey: memberKey, id: memberKeyId } = (
      await stack.api("POST", "/v1/api-keys", { name: "auditor test", role: "member" })
    ).body.data;
    const member = stack.client(memberKey);
    const metric = (
      await member("POST", "/v1/metric/definitions", builtInMetric("audit-turns", { kind: "TURN_COUNT" }, "COUNT"))
    ).body.data;
    expect((await member("PUT", "/v1/metric/definitions/audit-turns", { name: "Turns" })).status).toBe(200);
    const policy = (
      await member("POST", "/v1/metric/policies", {
        name: "Audited",
        status: "ACTIVE",
        metrics: [{ id: metric.id }],
        conditions: [],
      })
    ).body.data;
    expect((await member("DELETE", `/v1/metric/policies/${policy.id}`)).status).toBe(200);
    expect((await member("PUT", "/v1/metric/policies/no-such-policy", { name: "x" })).status).toBe(404);
    const backfill = (
      await member("POST", "/v1/backfills", { name: "Audited", schedule: "rate(1 day)", metrics: [{ id: metric.id }] })
    ).body.data;
    expect((await member("DELETE", `/v1/backfills/${backfill.id}`)).status).toBe(200);
    await member("GET", "/v1/call");
    await stack.api("DELETE", `/v1/api-keys/${memberKeyId}`);

    expect((await member("GET", "/v1/audit-events")).status).toBe(401);
    const events = (await stack.api("GET", "/v1/audit-events?limit=100")).body.data;
    const trail = events
      .filter((event: { keyId: string }) => event.keyId === memberKeyId || event.keyId === adminKeyId)
      .slice(0, 7)
      .reverse()
      .map(({ action, resourceId, keyId, role }: Record<string, string>) => ({ action, resourceId, keyId, role }));
    expect(trail).toEqual([
      { action: "metric_definition.created", resourceId: metric.id, keyId: memberKeyId, role: "member" },
      { action: "metric_definition.updated", resourceId: metric.id, keyId: memberKeyId, role: "member" },
      { action: "metric_policy.created", resourceId: policy.id, keyId: memberKeyId, role: "member" },
      { action: "metric_policy.deleted", resourceId: policy.id, keyId: memberKeyId, role: "member" },
      { action: "backfill.created", resourceId: backfill.id, keyId: memberKeyId, role: "member" },
      { action: "backfill.deleted", resourceId: backfill.id, keyId: memberKeyId, role: "member" },
      { action: "api_key.revoked", resourceId: memberKeyId, keyId: adminKeyId, role: "admin" },
    ]);
    expect(events.find((event: { action: string }) => event.action === "api_key.created")).toMatchObject({
      resourceId: memberKeyId,
      keyId: adminKeyId,
    });
    // Reads, failed changes and other organizations leave no event here.
    expect(events.filter((event: { resourceId?: string }) => event.resourceId === "no-such-policy")).toEqual([]);
    expect((await other.api("GET", "/v1/audit-events")).body.data).toEqual([]);
  });
});
