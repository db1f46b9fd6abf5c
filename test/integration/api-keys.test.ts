/** Admins manage their organization's API keys through the API: create, list, revoke. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashApiKey } from "../../shared/auth.ts";
import { keys } from "../../shared/keys.ts";
import { table } from "../../shared/store/table.ts";
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
});
