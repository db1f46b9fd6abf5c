/**
 * Integrations through the API: admins connect a voice platform, the secret is write-only,
 * a rotation keeps the old secret for a grace period, and another organization's integration
 * is "not found".
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keys } from "../../shared/keys.ts";
import { table } from "../../shared/store/table.ts";
import { startTestStack, type TestStack } from "../support/stack.ts";

const RETELL_KEY = "key_retell_0123456789abcdef";

describe("integrations through the API", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(() => stack?.stop());

  it("creates, lists, reads, changes and deletes an integration, never answering its secret", async () => {
    const created = await stack.api("POST", "/v1/integrations", {
      provider: "retell",
      name: "Support line",
      secret: RETELL_KEY,
      agentMapping: { agent_abc: "support-bot" },
      properties: { source: "retell" },
    });
    expect(created.status).toBe(201);
    const integration = created.body.data;
    expect(integration).toEqual({
      id: expect.stringMatching(/^int_[A-Za-z0-9_-]{24}$/),
      provider: "retell",
      name: "Support line",
      webhookUrl: `/v1/integrations/retell/${integration.id}/events`,
      agentMapping: { agent_abc: "support-bot" },
      properties: { source: "retell" },
      createdAt: expect.any(String),
      updatedAt: integration.createdAt,
    });
    // Stored for verification, never answered.
    expect((await table.get(keys.integration(integration.id)))?.secret).toBe(RETELL_KEY);

    const listed = await stack.api("GET", "/v1/integrations");
    expect(listed.status).toBe(200);
    expect(listed.body.data).toEqual([integration]);
    expect((await stack.api("GET", `/v1/integrations/${integration.id}`)).body.data).toEqual(integration);

    const renamed = await stack.api("PUT", `/v1/integrations/${integration.id}`, { name: "Support (EU)" });
    expect(renamed.status).toBe(200);
    expect(renamed.body.data).toMatchObject({ name: "Support (EU)", agentMapping: { agent_abc: "support-bot" } });
    expect(renamed.body.data.secretRotatedAt).toBeUndefined();

    // A new secret: the old one still verifies for the grace period.
    const before = Date.now();
    const rotated = await stack.api("PUT", `/v1/integrations/${integration.id}`, {
      secret: "key_retell_rotated_9876543210",
      secretGraceSeconds: 600,
    });
    expect(rotated.status).toBe(200);
    const validUntil = Date.parse(rotated.body.data.previousSecretValidUntil);
    expect(validUntil).toBeGreaterThanOrEqual(before + 600_000 - 5_000);
    expect(validUntil).toBeLessThanOrEqual(Date.now() + 600_000);
    expect(JSON.stringify(rotated.body)).not.toMatch(/key_retell/);
    const stored = await table.get(keys.integration(integration.id));
    expect(stored).toMatchObject({ secret: "key_retell_rotated_9876543210", previousSecret: RETELL_KEY });

    const audit = await stack.api("GET", "/v1/audit-events");
    const actions = audit.body.data.map((event: { action: string }) => event.action);
    expect(actions).toEqual(expect.arrayContaining(["integration.created", "integration.updated"]));
    expect(JSON.stringify(audit.body)).not.toMatch(/key_retell/);

    const deleted = await stack.api("DELETE", `/v1/integrations/${integration.id}`);
    expect(deleted.body.data).toEqual({ id: integration.id, deleted: true });
    expect((await stack.api("GET", `/v1/integrations/${integration.id}`)).status).toBe(404);
    expect((await stack.api("DELETE", `/v1/integrations/${integration.id}`)).status).toBe(404);
    expect(await table.get(keys.integration(integration.id))).toBeUndefined();
  });

  it("takes Vapi's HMAC settings for Vapi only, and answers 400 naming the field for bad input", async () => {
    const vapi = await stack.api("POST", "/v1/integrations", {
      provider: "vapi",
      name: "Vapi HMAC",
      secret: "vapi-hmac-secret",
      vapiAuth: { type: "hmac", signatureHeader: "X-Vapi-Signature" },
    });
    expect(vapi.status).toBe(201);
    expect(vapi.body.data.vapiAuth).toEqual({
      type: "hmac",
      signatureHeader: "x-vapi-signature",
      timestampHeader: "x-timestamp",
    });
    const cases: [object, string][] = [
      [{ provider: "retell", name: "x", secret: RETELL_KEY, vapiAuth: { type: "bearer" } }, "body.vapiAuth"],
      [{ provider: "twilio", name: "x", secret: RETELL_KEY }, "body.provider"],
      [{ provider: "retell", name: "x", secret: "short" }, "body.secret"],
      [{ provider: "retell", name: "", secret: RETELL_KEY }, "body.name"],
    ];
    for (const [body, field] of cases) {
      const refused = await stack.api("POST", "/v1/integrations", body);
      expect(refused.status, field).toBe(400);
      expect(refused.body.error.details, field).toEqual(expect.arrayContaining([expect.objectContaining({ field })]));
    }
    const graceAlone = await stack.api("PUT", `/v1/integrations/${vapi.body.data.id}`, { secretGraceSeconds: 60 });
    expect(graceAlone.status).toBe(400);
    // A change cannot give another platform's integration Vapi's settings either.
    const retell = await stack.api("POST", "/v1/integrations", { provider: "retell", name: "R", secret: RETELL_KEY });
    const vapiAuthOnRetell = await stack.api("PUT", `/v1/integrations/${retell.body.data.id}`, {
      vapiAuth: { type: "hmac" },
    });
    expect(vapiAuthOnRetell.status).toBe(400);
    expect(vapiAuthOnRetell.body.error.details).toEqual([expect.objectContaining({ field: "body.vapiAuth" })]);
    expect((await stack.api("GET", `/v1/integrations/${retell.body.data.id}`)).body.data.vapiAuth).toBeUndefined();
  });

  it("is for admin keys of its own organization only", async () => {
    const created = await stack.api("POST", "/v1/integrations", {
      provider: "elevenlabs",
      name: "ElevenLabs agent",
      secret: "wsec_elevenlabs_secret",
    });
    const id = created.body.data.id;
    const memberKey = await stack.api("POST", "/v1/api-keys", { name: "integrations member", role: "member" });
    const member = stack.client(memberKey.body.data.apiKey);
    expect((await member("GET", "/v1/integrations")).status).toBe(403);
    expect(
      (await member("POST", "/v1/integrations", { provider: "retell", name: "x", secret: RETELL_KEY })).status,
    ).toBe(403);
    const other = await stack.newOrganization("Other org");
    for (const [method, body] of [["GET"], ["PUT", { name: "taken over" }], ["DELETE"]] as const) {
      const response = await other.api(method, `/v1/integrations/${id}`, body);
      expect(response.status, method).toBe(404);
      expect(response.body.error.message, method).toBe(`Integration ${id} not found`);
    }
    expect((await other.api("GET", "/v1/integrations")).body.data).toEqual([]);
    expect((await stack.api("GET", `/v1/integrations/${id}`)).body.data.name).toBe("ElevenLabs agent");
  });
});
