import type { APIGatewayProxyEventV2, APIGatewayRequestAuthorizerEventV2 } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildAuthorizerEvent,
  buildHttpApiEvent,
  isTextContentType,
  toAuthorizerDecision,
  toGatewayResponse,
} from "../../infra/local/gateway-payloads.ts";
import { createRouter } from "../../infra/local/gateway-routes.ts";
import { MAX_PAYLOAD_BYTES } from "../../infra/local/http-gateway.ts";
import { type LocalRuntime, startLocalRuntime } from "../../infra/local/runtime.ts";
import { FUNCTION_DEFAULTS, type RouteEntry, type Wiring } from "../../shared/wiring.ts";

const echo = "test/fixtures/echo-handler.ts";

interface EchoBody {
  event: APIGatewayProxyEventV2;
  context: { functionName: string; awsRequestId: string; remainingTimeInMillis: number; invokedFunctionArn: string };
}
type ErrorBody = { error: { code: string; message: string } };
const readEcho = async (response: Response) => (await response.json()) as EchoBody;
const route = (
  method: RouteEntry["method"],
  path: string,
  id: string,
  extra: Partial<RouteEntry> = {},
): RouteEntry => ({
  id,
  method,
  path,
  entry: echo,
  access: {},
  ...extra,
});

const routes: RouteEntry[] = [
  route("GET", "/v1/call/{callId}", "get-call"),
  route("GET", "/v1/call/search", "search-calls"),
  route("PUT", "/v1/call/{callId}", "put-call", { timeoutSeconds: 12 }),
  route("POST", "/v1/echo", "post-echo"),
  route("GET", "/files/{proxy+}", "files"),
  route("GET", "/result/{kind}", "result"),
  route("GET", "/boom", "boom"),
  route("GET", "/invalid", "invalid"),
  route("GET", "/slow", "slow", { timeoutSeconds: 1 }),
];

describe("createRouter", () => {
  const match = createRouter(routes);

  it("matches templates and decodes path parameters", () => {
    expect(match("GET", "/v1/call/abc%20d%2Fe")).toMatchObject({
      kind: "route",
      route: { id: "get-call" },
      pathParameters: { callId: "abc d/e" },
    });
  });

  it("prefers literal segments over parameters, regardless of declaration order", () => {
    expect(match("GET", "/v1/call/search")).toMatchObject({ kind: "route", route: { id: "search-calls" } });
  });

  it("matches greedy parameters over one or more segments", () => {
    expect(match("GET", "/files/a/b%20c.txt")).toMatchObject({ kind: "route", pathParameters: { proxy: "a/b c.txt" } });
    expect(match("GET", "/files")).toEqual({ kind: "notFound" });
    expect(match("GET", "/files/")).toEqual({ kind: "notFound" });
  });

  it("distinguishes unknown paths from known paths with another method", () => {
    expect(match("GET", "/nope")).toEqual({ kind: "notFound" });
    expect(match("GET", "/v1/call")).toEqual({ kind: "notFound" });
    expect(match("GET", "/v1/call/")).toEqual({ kind: "notFound" });
    expect(match("GET", "/v1/call/x/extra")).toEqual({ kind: "notFound" });
    expect(match("DELETE", "/v1/call/x")).toEqual({ kind: "methodNotAllowed", allowed: ["GET", "PUT"] });
  });
});

describe("buildHttpApiEvent", () => {
  const now = new Date("2026-03-12T19:03:58.123Z");
  const build = (overrides: Partial<Parameters<typeof buildHttpApiEvent>[0]> = {}) =>
    buildHttpApiEvent(
      {
        method: "GET",
        url: "/v1/call/abc?limit=5&tag=a&tag=b&q=caf%C3%A9+au+lait&empty",
        rawHeaders: [
          "Host",
          "127.0.0.1:3000",
          "User-Agent",
          "test-agent",
          "X-Multi",
          "one",
          "x-multi",
          "two",
          "Cookie",
          "a=1; b=2",
          "Cookie",
          "c=3",
        ],
        body: Buffer.alloc(0),
        sourceIp: "127.0.0.1",
        protocol: "HTTP/1.1",
        localPort: 3000,
        ...overrides,
      },
      { routeKey: "GET /v1/call/{callId}", pathParameters: { callId: "abc" }, requestId: "req-1", now },
    );

  it("builds a payload 2.0 event like API Gateway", () => {
    const event = build();
    expect(event).toMatchObject({
      version: "2.0",
      routeKey: "GET /v1/call/{callId}",
      rawPath: "/v1/call/abc",
      rawQueryString: "limit=5&tag=a&tag=b&q=caf%C3%A9+au+lait&empty",
      cookies: ["a=1", "b=2", "c=3"],
      queryStringParameters: { limit: "5", tag: "a,b", q: "café au lait", empty: "" },
      pathParameters: { callId: "abc" },
      isBase64Encoded: false,
      requestContext: {
        accountId: expect.any(String),
        apiId: expect.any(String),
        domainName: "127.0.0.1:3000",
        http: {
          method: "GET",
          path: "/v1/call/abc",
          protocol: "HTTP/1.1",
          sourceIp: "127.0.0.1",
          userAgent: "test-agent",
        },
        requestId: "req-1",
        routeKey: "GET /v1/call/{callId}",
        stage: "$default",
        time: "12/Mar/2026:19:03:58 +0000",
        timeEpoch: now.getTime(),
      },
    });
    expect(event.headers).toMatchObject({ host: "127.0.0.1:3000", "user-agent": "test-agent", "x-multi": "one,two" });
    expect(event.headers).not.toHaveProperty("cookie");
    expect(event.headers["x-forwarded-for"]).toBe("127.0.0.1");
    expect(event.body).toBeUndefined();
  });

  it("omits empty query, path parameters and cookies", () => {
    const event = buildHttpApiEvent(
      { method: "GET", url: "/health", rawHeaders: [], body: Buffer.alloc(0), sourceIp: "::1", protocol: "HTTP/1.1" },
      { routeKey: "GET /health", pathParameters: {}, requestId: "r", now },
    );
    expect(event.rawQueryString).toBe("");
    expect(event).not.toHaveProperty("queryStringParameters");
    expect(event).not.toHaveProperty("pathParameters");
    expect(event).not.toHaveProperty("cookies");
  });

  it("passes text bodies as strings and base64-encodes binary ones", () => {
    const json = build({
      method: "POST",
      rawHeaders: ["Content-Type", "application/json; charset=utf-8"],
      body: Buffer.from('{"a":"é"}'),
    });
    expect(json).toMatchObject({ body: '{"a":"é"}', isBase64Encoded: false });
    const bytes = Buffer.from([0, 255, 1, 254]);
    const binary = build({ method: "POST", rawHeaders: ["Content-Type", "application/octet-stream"], body: bytes });
    expect(binary).toMatchObject({ body: bytes.toString("base64"), isBase64Encoded: true });
  });

  it("knows which content types are text", () => {
    for (const type of [
      "text/plain",
      "application/json",
      "application/problem+json",
      "application/x-www-form-urlencoded",
      "application/xml",
    ]) {
      expect(isTextContentType(type)).toBe(true);
    }
    for (const type of [undefined, "application/octet-stream", "image/png", "application/pdf"]) {
      expect(isTextContentType(type)).toBe(false);
    }
  });
});

describe("toGatewayResponse", () => {
  it("uses a structured result as is", () => {
    const response = toGatewayResponse({
      statusCode: 201,
      headers: { "Content-Type": "text/plain", "X-Count": 3, "X-Flag": true },
      cookies: ["session=1; HttpOnly"],
      body: "created",
    });
    expect(response).toEqual({
      statusCode: 201,
      headers: { "content-type": "text/plain", "x-count": "3", "x-flag": "true" },
      cookies: ["session=1; HttpOnly"],
      body: Buffer.from("created"),
    });
  });

  it("decodes base64 bodies", () => {
    const bytes = Buffer.from([1, 2, 3, 250]);
    expect(toGatewayResponse({ statusCode: 200, body: bytes.toString("base64"), isBase64Encoded: true }).body).toEqual(
      bytes,
    );
  });

  it("infers 200 application/json for results without statusCode", () => {
    expect(toGatewayResponse({ data: [1] })).toEqual({
      statusCode: 200,
      headers: { "content-type": "application/json" },
      cookies: [],
      body: Buffer.from('{"data":[1]}'),
    });
    expect(toGatewayResponse("plain words").body.toString()).toBe("plain words");
    expect(toGatewayResponse([1, 2]).body.toString()).toBe("[1,2]");
  });

  it("rejects results API Gateway could not map", () => {
    expect(() => toGatewayResponse({ statusCode: "200" })).toThrow(/statusCode/);
    expect(() => toGatewayResponse({ statusCode: 200, body: { a: 1 } })).toThrow(/body/);
  });
});

describe("local HTTP gateway", () => {
  let runtime: LocalRuntime;
  const errors: { msg: string; extra?: object }[] = [];
  /** What the fake authorizer was asked, newest last. */
  const authorizerEvents: APIGatewayRequestAuthorizerEventV2[] = [];
  const wiring: Wiring = {
    authorizer: { id: "api-authorizer", entry: "functions/api/authorizer.ts", access: {} },
    // The gateway's plumbing is tested on public routes; /private/{kind} sits behind the authorizer.
    routes: [...routes.map((r) => ({ ...r, public: true })), route("GET", "/private/{kind}", "private")],
    queueConsumers: [],
    streamConsumers: [],
    schedules: [],
  };

  beforeAll(async () => {
    runtime = await startLocalRuntime({
      wiring,
      // No consumers: the engines are never contacted.
      dynamodbEndpoint: "http://127.0.0.1:9",
      sqsEndpoint: "http://127.0.0.1:9",
      tableName: "unused",
      queueUrls: { work: "unused", dispatch: "unused", webhook: "unused", batch: "unused" },
      port: 0,
      logger: { info: () => {}, error: (msg, extra) => errors.push({ msg, extra }) },
      handlerOverrides: {
        "api-authorizer": async (event: APIGatewayRequestAuthorizerEventV2) => {
          authorizerEvents.push(event);
          switch (event.identitySource[0]) {
            case "Bearer good":
              return { isAuthorized: true, context: { orgId: "org-1", role: "admin", keyId: "k1" } };
            case "Bearer crash":
              throw new Error("authorizer down");
            case "Bearer garbled":
              return { allowed: true };
            default:
              return { isAuthorized: false, context: {} };
          }
        },
        result: async (event: APIGatewayProxyEventV2) => {
          switch (event.pathParameters?.kind) {
            case "object":
              return { data: { ok: true } };
            case "string":
              return "just text";
            case "binary":
              return {
                statusCode: 200,
                headers: { "content-type": "image/png" },
                body: Buffer.from([137, 80, 78, 71]).toString("base64"),
                isBase64Encoded: true,
              };
            case "cookies":
              return { statusCode: 204, cookies: ["a=1; Path=/", "b=2; HttpOnly"] };
            default:
              return { statusCode: 418, body: "teapot" };
          }
        },
        boom: async () => {
          throw new Error("kaboom");
        },
        invalid: async () => ({ statusCode: "nope" }),
        slow: () => new Promise((resolve) => setTimeout(() => resolve({ statusCode: 200 }), 1_500)),
      },
    });
  });
  afterAll(() => runtime?.stop());

  it("binds to 127.0.0.1 and answers /health", async () => {
    expect(runtime.baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const response = await fetch(`${runtime.baseUrl}/health`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: "ok" });
  });

  it("invokes the route's module with a payload 2.0 event and a Lambda context", async () => {
    const response = await fetch(`${runtime.baseUrl}/v1/call/c%201?limit=2&limit=3`, {
      headers: { "X-Custom": "Yes", cookie: "k=v" },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("x-function-name")).toBe("get-call");
    expect(response.headers.get("apigw-requestid")).toBeTruthy();
    const { event, context } = await readEcho(response);
    expect(event).toMatchObject({
      version: "2.0",
      routeKey: "GET /v1/call/{callId}",
      rawPath: "/v1/call/c%201",
      rawQueryString: "limit=2&limit=3",
      queryStringParameters: { limit: "2,3" },
      pathParameters: { callId: "c 1" },
      cookies: ["k=v"],
      headers: { "x-custom": "Yes" },
      requestContext: { http: { method: "GET", sourceIp: "127.0.0.1" }, stage: "$default" },
    });
    expect(event.requestContext.requestId).toBe(response.headers.get("apigw-requestid"));
    expect(context.functionName).toBe("get-call");
    expect(context.invokedFunctionArn).toMatch(/^arn:aws:lambda:us-east-1:\d{12}:function:get-call$/);
    // The wiring's default timeout, as in AWS.
    const timeoutMs = FUNCTION_DEFAULTS.timeoutSeconds * 1000;
    expect(context.remainingTimeInMillis).toBeGreaterThan(timeoutMs - 1000);
    expect(context.remainingTimeInMillis).toBeLessThanOrEqual(timeoutMs);
  });

  it("uses the entry's timeout for the context's remaining time", async () => {
    const response = await fetch(`${runtime.baseUrl}/v1/call/x`, {
      method: "PUT",
      body: "{}",
      headers: { "content-type": "application/json" },
    });
    const { event, context } = await readEcho(response);
    expect(context.remainingTimeInMillis).toBeGreaterThan(11_000);
    expect(context.remainingTimeInMillis).toBeLessThanOrEqual(12_000);
    expect(event).toMatchObject({ body: "{}", isBase64Encoded: false });
  });

  it("passes binary request bodies base64-encoded", async () => {
    const bytes = Buffer.from([0, 1, 2, 255, 254]);
    const response = await fetch(`${runtime.baseUrl}/v1/echo`, {
      method: "POST",
      body: bytes,
      headers: { "content-type": "application/octet-stream" },
    });
    const { event } = await readEcho(response);
    expect(event.isBase64Encoded).toBe(true);
    expect(Buffer.from(event.body ?? "", "base64")).toEqual(bytes);
  });

  it("maps handler results like API Gateway", async () => {
    const object = await fetch(`${runtime.baseUrl}/result/object`);
    expect(object.status).toBe(200);
    expect(object.headers.get("content-type")).toBe("application/json");
    expect(await object.json()).toEqual({ data: { ok: true } });

    const text = await fetch(`${runtime.baseUrl}/result/string`);
    expect(await text.text()).toBe("just text");

    const binary = await fetch(`${runtime.baseUrl}/result/binary`);
    expect(binary.headers.get("content-type")).toBe("image/png");
    expect(Buffer.from(await binary.arrayBuffer())).toEqual(Buffer.from([137, 80, 78, 71]));

    const cookies = await fetch(`${runtime.baseUrl}/result/cookies`);
    expect(cookies.status).toBe(204);
    expect(cookies.headers.getSetCookie()).toEqual(["a=1; Path=/", "b=2; HttpOnly"]);

    const teapot = await fetch(`${runtime.baseUrl}/result/other`);
    expect(teapot.status).toBe(418);
    expect(await teapot.text()).toBe("teapot");
  });

  it("answers 404 for unknown routes and 405 for a known path with another method", async () => {
    const missing = await fetch(`${runtime.baseUrl}/x`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: { code: "not_found", message: "No route for GET /x" } });

    const wrongMethod = await fetch(`${runtime.baseUrl}/v1/echo`);
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get("allow")).toBe("POST");
    expect(await wrongMethod.json()).toEqual({
      error: { code: "method_not_allowed", message: "No route for GET /v1/echo" },
    });
  });

  it("answers 413 above API Gateway's 10 MB payload limit and accepts exactly the limit", async () => {
    const tooLarge = await fetch(`${runtime.baseUrl}/v1/echo`, {
      method: "POST",
      body: Buffer.alloc(MAX_PAYLOAD_BYTES + 1, 97),
      headers: { "content-type": "text/plain" },
    });
    expect(tooLarge.status).toBe(413);
    expect(((await tooLarge.json()) as ErrorBody).error.code).toBe("payload_too_large");

    const atLimit = await fetch(`${runtime.baseUrl}/v1/echo`, {
      method: "POST",
      body: Buffer.alloc(MAX_PAYLOAD_BYTES, 97),
      headers: { "content-type": "text/plain" },
    });
    expect(atLimit.status).toBe(200);
    expect((await readEcho(atLimit)).event.body).toHaveLength(MAX_PAYLOAD_BYTES);
  });

  it("answers 500 and logs when the handler throws, answers invalidly or times out", async () => {
    errors.length = 0;
    for (const path of ["/boom", "/invalid", "/slow"]) {
      const response = await fetch(`${runtime.baseUrl}${path}`);
      expect(response.status).toBe(500);
      expect(await response.json()).toEqual({ error: { code: "internal_error", message: "Internal server error" } });
    }
    expect(errors.map((error) => error.msg)).toEqual([
      "Handler boom failed",
      "Handler invalid failed",
      "Handler slow failed",
    ]);
    expect(errors[0]?.extra).toMatchObject({ error: "kaboom" });
    expect(errors[2]?.extra).toMatchObject({ name: "LambdaTimeoutError" });
  });

  it("counts invocations per route", () => {
    const { http } = runtime.stats();
    expect(http.invocations["get-call"]).toBeGreaterThanOrEqual(1);
    expect(http.handlerErrors).toBeGreaterThanOrEqual(3);
  });

  describe("request authorizer (as deployed: $request.header.Authorization, simple responses)", () => {
    const get = (authorization?: string) =>
      fetch(`${runtime.baseUrl}/private/x?q=1`, { headers: authorization ? { authorization } : {} });

    it("passes the authorizer's context to the handler as requestContext.authorizer.lambda", async () => {
      authorizerEvents.length = 0;
      const response = await get("Bearer good");
      expect(response.status).toBe(200);
      const { event } = await readEcho(response);
      expect((event.requestContext as { authorizer?: unknown }).authorizer).toEqual({
        lambda: { orgId: "org-1", role: "admin", keyId: "k1" },
      });
      expect(authorizerEvents).toHaveLength(1);
      expect(authorizerEvents[0]).toMatchObject({
        version: "2.0",
        type: "REQUEST",
        identitySource: ["Bearer good"],
        routeKey: "GET /private/{kind}",
        rawPath: "/private/x",
        rawQueryString: "q=1",
        pathParameters: { kind: "x" },
        routeArn: expect.stringMatching(/^arn:aws:execute-api:us-east-1:\d{12}:local\/\$default\/GET\/private\/x$/),
      });
    });

    it("refuses a request without the header before invoking the authorizer, and one it denies", async () => {
      const before = runtime.stats().http;
      authorizerEvents.length = 0;
      for (const authorization of [undefined, "Bearer nope"]) {
        const response = await get(authorization);
        expect(response.status).toBe(401);
        expect(((await response.json()) as ErrorBody).error.code).toBe("unauthorized");
      }
      expect(authorizerEvents.map((e) => e.identitySource)).toEqual([["Bearer nope"]]);
      const after = runtime.stats().http;
      expect(after.invocations.private ?? 0).toBe(before.invocations.private ?? 0);
      expect(after.authorizer.refused - before.authorizer.refused).toBe(2);
      expect(after.authorizer.invocations - before.authorizer.invocations).toBe(1);
    });

    it("answers 500 when the authorizer throws or answers without isAuthorized", async () => {
      errors.length = 0;
      for (const authorization of ["Bearer crash", "Bearer garbled"]) {
        const response = await get(authorization);
        expect(response.status).toBe(500);
        expect(((await response.json()) as ErrorBody).error.code).toBe("internal_error");
      }
      expect(errors.map((error) => error.msg)).toEqual(["Authorizer failed", "Authorizer failed"]);
      expect(errors[0]?.extra).toMatchObject({ error: "authorizer down" });
    });

    it("skips the authorizer on public routes", async () => {
      authorizerEvents.length = 0;
      expect((await fetch(`${runtime.baseUrl}/v1/call/abc`)).status).toBe(200);
      expect(authorizerEvents).toHaveLength(0);
    });
  });
});

describe("authorizer events and decisions", () => {
  const event = buildHttpApiEvent(
    {
      method: "POST",
      url: "/v1/call?x=1",
      rawHeaders: ["Authorization", "Bearer k", "Cookie", "a=1"],
      body: Buffer.from("{}"),
      sourceIp: "127.0.0.1",
      protocol: "HTTP/1.1",
    },
    { routeKey: "POST /v1/call", pathParameters: {}, requestId: "r1", now: new Date(0) },
  );

  it("builds the payload 2.0 REQUEST event without the body", () => {
    const authorizerEvent = buildAuthorizerEvent(event, "Bearer k", "eu-west-1");
    expect(authorizerEvent).toMatchObject({
      type: "REQUEST",
      identitySource: ["Bearer k"],
      routeArn: "arn:aws:execute-api:eu-west-1:000000000000:local/$default/POST/v1/call",
      cookies: ["a=1"],
      headers: { authorization: "Bearer k" },
      queryStringParameters: { x: "1" },
      requestContext: { requestId: "r1" },
    });
    expect(authorizerEvent).not.toHaveProperty("body");
    expect(authorizerEvent).not.toHaveProperty("isBase64Encoded");
  });

  it("reads simple responses and rejects anything else", () => {
    expect(toAuthorizerDecision({ isAuthorized: true, context: { orgId: "o" } })).toEqual({
      authorized: true,
      context: { orgId: "o" },
    });
    expect(toAuthorizerDecision({ isAuthorized: true })).toEqual({ authorized: true, context: {} });
    expect(toAuthorizerDecision({ isAuthorized: false, context: { orgId: "o" } })).toEqual({ authorized: false });
    expect(() => toAuthorizerDecision({ principalId: "x", policyDocument: {} })).toThrow(/isAuthorized/);
    expect(() => toAuthorizerDecision(null)).toThrow(/isAuthorized/);
    expect(() => toAuthorizerDecision({ isAuthorized: true, context: [1] })).toThrow(/context/);
  });
});
