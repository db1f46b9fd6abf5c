import { DynamoDBDocumentClient, GetCommand } from "@aws-sdk/lib-dynamodb";
import type { APIGatewayProxyEventV2, Context } from "aws-lambda";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import {
  buildAuthorizerEvent,
  toAuthorizerDecision,
  withAuthorizerContext,
} from "../../infra/local/gateway-payloads.ts";
import { hashApiKey, roles } from "../../shared/auth.ts";
import { conflict, invalid, notFound, tooLarge, unavailable } from "../../shared/errors.ts";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { keys } from "../../shared/keys.ts";
import { dataOf, pageOf } from "../../shared/schemas/responses.ts";

const ddb = mockClient(DynamoDBDocumentClient);
const KEY = "mcj_unit_test_key_0123456789";

function event(overrides: Partial<APIGatewayProxyEventV2> = {}): APIGatewayProxyEventV2 {
  return {
    version: "2.0",
    routeKey: "POST /thing",
    rawPath: "/thing",
    rawQueryString: "",
    headers: { authorization: `Bearer ${KEY}` },
    requestContext: {} as never,
    isBase64Encoded: false,
    ...overrides,
  };
}

const route = apiRoute(
  {
    roles,
    body: z.strictObject({ name: z.string().min(2) }),
    query: z.object({ n: z.coerce.number().int().optional() }),
  },
  async ({ principal, body, query }) => {
    if (body.name === "taken") throw conflict("taken");
    if (body.name === "boom") throw new Error("secret internals");
    return { data: { org: principal.orgId, name: body.name, n: query.n } };
  },
);
const invoke = (e: APIGatewayProxyEventV2) => route(e, {} as Context) as Promise<any>;

describe("apiRoute", () => {
  beforeEach(() => {
    ddb.reset();
    ddb.on(GetCommand).resolves({});
    ddb
      .on(GetCommand, { Key: { pk: `APIKEY#${hashApiKey(KEY)}`, sk: "APIKEY" } })
      .resolves({ Item: { orgId: "org-1", role: "member", keyId: "k" } });
  });

  it("authenticates by key hash and passes validated input to the handler", async () => {
    const response = await invoke(event({ body: JSON.stringify({ name: "ok" }), queryStringParameters: { n: "3" } }));
    expect(response.statusCode).toBe(200);
    expect(JSON.parse(response.body)).toEqual({ data: { org: "org-1", name: "ok", n: 3 } });
  });

  it("trusts the request authorizer's context in AWS and skips the key lookup", async () => {
    const authorized = event({
      headers: {},
      body: JSON.stringify({ name: "ok" }),
      requestContext: { authorizer: { lambda: { orgId: "org-9", role: "admin", keyId: "k9" } } } as never,
    });
    const response = await invoke(authorized);
    expect(JSON.parse(response.body)).toEqual({ data: { org: "org-9", name: "ok" } });
    const keyLookups = ddb
      .commandCalls(GetCommand)
      .filter((call) => String(call.args[0].input.Key?.pk).startsWith(keys.apiKey("").pk));
    expect(keyLookups).toHaveLength(0);
    // A malformed context is not trusted: the key itself is checked.
    const malformed = event({
      headers: {},
      body: JSON.stringify({ name: "ok" }),
      requestContext: { authorizer: { lambda: { orgId: "org-9", role: "root" } } } as never,
    });
    expect((await invoke(malformed)).statusCode).toBe(401);
  });

  it("authorizer: resolves a key to its organization and refuses unknown keys", async () => {
    const { handler } = await import("../../functions/api/authorizer.ts");
    const request = (authorization?: string) =>
      ({ headers: authorization ? { authorization } : {}, routeKey: "GET /v1/call" }) as never;
    expect(await handler(request(`Bearer ${KEY}`), {} as Context)).toEqual({
      isAuthorized: true,
      context: { orgId: "org-1", role: "member", keyId: "k" },
    });
    expect(await handler(request("Bearer mcj_unknown_key_000000"), {} as Context)).toEqual({
      isAuthorized: false,
      context: {},
    });
    expect(await handler(request(), {} as Context)).toEqual({ isAuthorized: false, context: {} });
  });

  it("authorizer → gateway → route: the route sees the principal the authorizer resolved", async () => {
    const { handler } = await import("../../functions/api/authorizer.ts");
    const request = event({
      body: JSON.stringify({ name: "ok" }),
      requestContext: { stage: "$default", http: { method: "POST" } } as never,
    });
    const decision = toAuthorizerDecision(
      await handler(buildAuthorizerEvent(request, request.headers.authorization ?? "") as never, {} as Context),
    );
    expect(decision.authorized).toBe(true);
    if (!decision.authorized) return;
    // Without the header, only the authorizer's context can name the organization.
    const response = await invoke(withAuthorizerContext({ ...request, headers: {} }, decision.context));
    expect(response.statusCode).toBe(200);
    expect(JSON.parse(response.body)).toEqual({ data: { org: "org-1", name: "ok" } });
  });

  it("answers 401 for a missing or unknown key", async () => {
    expect((await invoke(event({ headers: {} }))).statusCode).toBe(401);
    expect((await invoke(event({ headers: { authorization: "Bearer mcj_unknown_key_000000" } }))).statusCode).toBe(401);
  });

  it("answers 400 with per-field details for invalid bodies and bad JSON", async () => {
    const invalid = await invoke(event({ body: JSON.stringify({ name: "x", extra: 1 }) }));
    expect(invalid.statusCode).toBe(400);
    const error = JSON.parse(invalid.body).error;
    expect(error.code).toBe("validation_error");
    expect(error.details.map((d: any) => d.field)).toEqual(expect.arrayContaining(["body.name", "body"]));
    expect((await invoke(event({ body: "{" }))).statusCode).toBe(400);
    expect(
      (await invoke(event({ body: JSON.stringify({ name: "ok" }), queryStringParameters: { n: "x" } }))).statusCode,
    ).toBe(400);
  });

  it("maps domain errors to their status and hides unexpected ones behind a 500", async () => {
    expect((await invoke(event({ body: JSON.stringify({ name: "taken" }) }))).statusCode).toBe(409);
    const crash = await invoke(event({ body: JSON.stringify({ name: "boom" }) }));
    expect(crash.statusCode).toBe(500);
    expect(crash.body).not.toContain("secret internals");
  });

  it("answers each kind of domain error with its status, and a retry hint as Retry-After", async () => {
    const failing = (error: Error) => apiRoute({ roles }, async () => Promise.reject(error));
    const answer = async (error: Error) => (await failing(error)(event(), {} as Context)) as any;
    const statuses = await Promise.all(
      [invalid("bad"), notFound("Call", "c1"), conflict("taken"), tooLarge("big")].map(async (error) => {
        const response = await answer(error);
        return [response.statusCode, JSON.parse(response.body).error.code];
      }),
    );
    expect(statuses).toEqual([
      [400, "validation_error"],
      [404, "not_found"],
      [409, "conflict"],
      [413, "payload_too_large"],
    ]);
    const busy = await answer(unavailable("try later", 7));
    expect([busy.statusCode, busy.headers["retry-after"]]).toEqual([503, "7"]);
  });

  it("wraps a result in the envelope its response schema declares", async () => {
    const one = apiRoute({ roles, response: dataOf(z.string()) }, async () => "value");
    const listed = apiRoute({ roles, response: pageOf(z.number()) }, async () => ({
      items: [1, 2],
      nextKey: { pk: "p" },
    }));
    const last = apiRoute({ roles, response: pageOf(z.number()) }, async () => ({ items: [3] }));
    const body = async (route: ReturnType<typeof apiRoute>) =>
      JSON.parse(((await route(event(), {} as Context)) as any).body);
    expect(await body(one)).toEqual({ data: "value" });
    expect(await body(listed)).toEqual({
      data: [1, 2],
      pagination: { hasMore: true, nextCursor: Buffer.from('{"pk":"p"}').toString("base64url") },
    });
    expect(await body(last)).toEqual({ data: [3], pagination: { hasMore: false, nextCursor: null } });
  });

  it("decodes base64 bodies", async () => {
    const body = Buffer.from(JSON.stringify({ name: "b64" })).toString("base64");
    const response = await invoke(event({ body, isBase64Encoded: true }));
    expect(JSON.parse(response.body).data.name).toBe("b64");
  });
});
