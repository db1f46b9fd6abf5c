/** The SDK against a scripted local HTTP server: requests, errors, retries, pagination, polling. */
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { generate } from "../../sdk/scripts/generate-types.ts";
import { ApiConnectionError, ApiError, Client, retryAfterMs } from "../../sdk/src/index.ts";

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: string;
}
type Reply = (request: Seen, response: ServerResponse) => void;

let baseURL = "";
let replies: Reply[] = [];
const seen: Seen[] = [];
const server = createServer((request, response) => {
  let body = "";
  request.on("data", (chunk) => {
    body += chunk;
  });
  request.on("end", () => {
    const entry = { method: request.method ?? "", url: request.url ?? "", headers: request.headers, body };
    seen.push(entry);
    const reply = replies.shift();
    if (!reply) return json(response, 500, { error: { code: "no_reply", message: "unscripted request" } });
    reply(entry, response);
  });
});

function json(response: ServerResponse, status: number, payload: unknown, headers: Record<string, string> = {}) {
  response.writeHead(status, { "content-type": "application/json", ...headers });
  response.end(JSON.stringify(payload));
}
const ok =
  (payload: unknown, status = 200): Reply =>
  (_, response) =>
    json(response, status, payload);
const fail =
  (status: number, headers: Record<string, string> = {}): Reply =>
  (_, response) =>
    json(response, status, { error: { code: `e${status}`, message: `failed ${status}` } }, headers);

const job = (overrides: object = {}) => ({
  id: "job-1",
  status: "PROCESSING",
  triggeredBy: "API",
  totalItems: 4,
  completedItems: 0,
  failedItems: 0,
  callCount: 2,
  metrics: [],
  policyIds: [],
  metadata: {},
  createdAt: "2026-01-01T00:00:00.000Z",
  updatedAt: "2026-01-01T00:00:00.000Z",
  ...overrides,
});

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
afterEach(() => {
  replies = [];
  seen.length = 0;
});

const client = (options: object = {}) => new Client({ baseURL, apiKey: "key-123", ...options });

describe("SDK client", () => {
  it("sends typed requests: method, path parameters, query, JSON body and the bearer key", async () => {
    replies = [ok({ data: { id: "c 1", segmentCount: 0 } }, 201), ok({ data: [], pagination: { hasMore: false } })];
    const created = await client().calls.create({ agentId: "a", startedAt: "2026-01-01T00:00:00Z" });
    expect(created.id).toBe("c 1");
    await client().request("listCallMetrics", { path: { callId: "c 1/x" }, query: { status: "success", limit: 5 } });
    expect(seen[0]).toMatchObject({ method: "POST", url: "/v1/call" });
    expect(seen[0]?.headers.authorization).toBe("Bearer key-123");
    expect(seen[0]?.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(seen[0]?.body ?? "")).toEqual({ agentId: "a", startedAt: "2026-01-01T00:00:00Z" });
    expect(seen[1]).toMatchObject({ method: "GET", url: "/v1/call/c%201%2Fx/metrics?status=success&limit=5" });
  });

  it("throws ApiError carrying status, code, details and body", async () => {
    replies = [
      (_, response) =>
        json(response, 400, {
          error: { code: "validation_error", message: "Invalid body.x", details: [{ field: "x" }] },
        }),
    ];
    const error = await client()
      .metrics.get("nope")
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 400, code: "validation_error", details: [{ field: "x" }] });
    expect((error as ApiError).body).toEqual({
      error: { code: "validation_error", message: "Invalid body.x", details: [{ field: "x" }] },
    });
  });

  it("retries 429 honouring Retry-After, and 5xx, then succeeds", async () => {
    replies = [fail(429, { "retry-after": "0.3" }), fail(503), ok({ data: job() })];
    const started = Date.now();
    const got = await client().jobs.get("job-1");
    expect(got.id).toBe("job-1");
    expect(seen).toHaveLength(3);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
  });

  it("does not retry a POST answered 500, and gives up after maxRetries", async () => {
    replies = [fail(500)];
    await expect(client().jobs.cancel("job-1")).rejects.toMatchObject({ status: 500 });
    expect(seen).toHaveLength(1);
    seen.length = 0;
    replies = [fail(429, { "retry-after": "0" }), fail(429, { "retry-after": "0" }), fail(429, { "retry-after": "0" })];
    await expect(client({ maxRetries: 2 }).jobs.get("job-1")).rejects.toMatchObject({ status: 429 });
    expect(seen).toHaveLength(3);
  });

  it("sends one Idempotency-Key per creating POST, the same on each retry, and so retries it after a 500 or a lost connection", async () => {
    replies = [fail(500), (_, response) => response.socket?.destroy(), ok({ data: job() }, 201)];
    const created = await client().jobs.create({ callIds: ["c"], metrics: [{ id: "m" }] });
    expect(created.id).toBe("job-1");
    expect(seen).toHaveLength(3);
    const sent = seen.map((request) => request.headers["idempotency-key"]);
    expect(sent[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(new Set(sent)).toEqual(new Set([sent[0]]));

    seen.length = 0;
    replies = [ok({ data: job() }, 201), ok({ data: job() }, 201)];
    await client().request("createCollectionJob", {
      body: { callIds: ["c"], metrics: [{ id: "m" }] },
      idempotencyKey: "my-own-key",
    });
    await client().jobs.create({ callIds: ["c"], metrics: [{ id: "m" }] });
    expect(seen[0]?.headers["idempotency-key"]).toBe("my-own-key");
    expect(seen[1]?.headers["idempotency-key"]).not.toBe(sent[0]);
    // A POST that creates nothing has no key, and is not retried after a 500.
    seen.length = 0;
    replies = [fail(500)];
    await expect(client().jobs.cancel("job-1")).rejects.toMatchObject({ status: 500 });
    expect(seen[0]?.headers["idempotency-key"]).toBeUndefined();
  });

  it("reports unreachable servers as ApiConnectionError", async () => {
    const closed = new Client({ baseURL: "http://127.0.0.1:1", apiKey: "k", maxRetries: 0 });
    await expect(closed.jobs.get("x")).rejects.toBeInstanceOf(ApiConnectionError);
  });

  it("iterates every page of a list", async () => {
    replies = [
      ok({ data: [job({ id: "1" }), job({ id: "2" })], pagination: { hasMore: true, nextCursor: "c1" } }),
      ok({ data: [job({ id: "3" })], pagination: { hasMore: true, nextCursor: "c2" } }),
      ok({ data: [job({ id: "4" })], pagination: { hasMore: false, nextCursor: null } }),
    ];
    const ids: string[] = [];
    for await (const item of client().jobs.iterate({ limit: 2, status: "COMPLETED" })) ids.push(item.id);
    expect(ids).toEqual(["1", "2", "3", "4"]);
    expect(seen.map((s) => s.url)).toEqual([
      "/v1/metric/collection-jobs?limit=2&status=COMPLETED",
      "/v1/metric/collection-jobs?limit=2&status=COMPLETED&after=c1",
      "/v1/metric/collection-jobs?limit=2&status=COMPLETED&after=c2",
    ]);
  });

  it("createAndWait polls until the job ends and reports progress", async () => {
    replies = [
      ok({ data: job({ status: "PENDING" }) }, 201),
      ok({ data: job({ completedItems: 1 }) }),
      ok({ data: job({ completedItems: 1 }) }),
      ok({ data: job({ completedItems: 3, failedItems: 1, status: "COMPLETED" }) }),
    ];
    const progress: string[] = [];
    const done = await client().jobs.createAndWait(
      { callIds: ["c"], metrics: [{ id: "m" }] },
      { intervalMs: 10, onProgress: (j) => progress.push(`${j.status}:${j.completedItems}`) },
    );
    expect(done.status).toBe("COMPLETED");
    expect(progress).toEqual(["PENDING:0", "PROCESSING:1", "PROCESSING:1", "COMPLETED:3"]);
  });

  it("reads MCJ_BASE_URL and MCJ_API_KEY from the environment", async () => {
    process.env.MCJ_BASE_URL = baseURL;
    process.env.MCJ_API_KEY = "from-env";
    try {
      replies = [ok({ data: { secret: "s", createdAt: "now" } })];
      await new Client().webhookSecret.get();
      expect(seen[0]?.headers.authorization).toBe("Bearer from-env");
    } finally {
      delete process.env.MCJ_BASE_URL;
      delete process.env.MCJ_API_KEY;
    }
    expect(() => new Client()).toThrow(/MCJ_BASE_URL/);
  });

  it("parses Retry-After in seconds and as a date", () => {
    expect(retryAfterMs("2")).toBe(2000);
    expect(retryAfterMs(null)).toBeUndefined();
    expect(retryAfterMs(new Date(Date.now() + 5000).toUTCString())).toBeGreaterThan(3000);
  });

  it("has src/types.ts generated from the current openapi.json (run npm run sdk:types)", () => {
    const document = JSON.parse(readFileSync(new URL("../../openapi.json", import.meta.url), "utf8"));
    // The committed file is biome-formatted; compare without layout.
    const normalize = (text: string) => text.replace(/[\s,;|()]+/g, "").replaceAll("'", '"');
    const committed = readFileSync(new URL("../../sdk/src/types.ts", import.meta.url), "utf8");
    expect(normalize(committed)).toBe(normalize(generate(document)));
  });
});
