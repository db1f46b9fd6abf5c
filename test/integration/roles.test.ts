/** Each route against a key of each role: served for the roles it states, 403 for the others. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Role, roles } from "../../shared/auth.ts";
import { contract, type RouteContract } from "../../shared/http/contract.ts";
import { createApiKey } from "../../shared/store/organizations.ts";
import { sampleCall } from "../support/fixtures.ts";
import { startTestStack, type TestStack } from "../support/stack.ts";

describe("roles of API keys", () => {
  let stack: TestStack;
  const clients = {} as Record<Role, TestStack["api"]>;
  beforeAll(async () => {
    stack = await startTestStack();
    for (const role of roles) {
      const { apiKey } = await createApiKey(stack.orgId, { role, name: `${role} key` });
      clients[role] = stack.client(apiKey);
    }
  });
  afterAll(() => stack?.stop());

  it("serves every route for the roles it states and refuses the others with 403", async () => {
    const routes = Object.entries(contract as Record<string, RouteContract>).filter(([, route]) => !route.public);
    const refusedWrongly: string[] = [];
    const servedWrongly: string[] = [];
    for (const [routeKey, route] of routes) {
      const [method = "GET", template = "/"] = routeKey.split(" ");
      // Ids nobody has and empty bodies: an allowed request ends in 400 or 404, never a change.
      const path = template.replace(/\{\w+\}/g, "roles-probe");
      for (const role of roles) {
        const response = await clients[role](method, path, method === "GET" || method === "DELETE" ? undefined : {});
        const allowed = route.roles.includes(role);
        if (allowed && response.status === 403) refusedWrongly.push(`${routeKey} as ${role}`);
        if (!allowed && (response.status !== 403 || response.body.error.code !== "forbidden"))
          servedWrongly.push(`${routeKey} as ${role}: ${response.status}`);
      }
    }
    expect(refusedWrongly).toEqual([]);
    expect(servedWrongly).toEqual([]);
  });

  it("lets a read-only key read what a member key wrote, and nothing more", async () => {
    const created = await clients.member("POST", "/v1/call", sampleCall({ externalId: "roles-call" }));
    expect(created.status).toBe(201);
    const read = await clients["read-only"]("GET", `/v1/call/${created.body.data.id}`);
    expect(read.status).toBe(200);
    const write = await clients["read-only"]("POST", "/v1/call", sampleCall({ externalId: "roles-call-2" }));
    expect(write.status).toBe(403);
    expect(write.body.error.message).toContain("read-only");
    expect((await clients["read-only"]("GET", "/v1/me")).body.data.role).toBe("read-only");
  });

  it("keeps members away from the webhook secret", async () => {
    expect((await clients.member("GET", "/v1/webhook-secret")).status).toBe(403);
    expect((await clients.admin("GET", "/v1/webhook-secret")).status).toBe(200);
  });
});
