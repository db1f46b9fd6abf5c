/**
 * The API contract: each entry is served by the handler it names, through that entry; the
 * committed openapi.json is current; and real responses of the handlers validate against
 * the response schemas they document.
 */

import { readdirSync, readFileSync } from "node:fs";
import { sign } from "retell-sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { contract, contractFor, type RouteContract } from "../../shared/http/contract.ts";
import { buildOpenApi } from "../../shared/http/openapi.ts";
import { errorBodySchema } from "../../shared/schemas/responses.ts";
import { wiring } from "../../shared/wiring.ts";
import { builtInMetric, llmMetric, sampleCall } from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitForJobEnd } from "../support/stack.ts";

describe("OpenAPI document", () => {
  const document = buildOpenApi();

  it("routes each contract entry to a handler that validates with that entry", () => {
    const served = (routeKey: string, handler: string) => {
      const source = readFileSync(new URL(`../../functions/api/${handler}.ts`, import.meta.url), "utf8");
      // Public routes answer without apiRoute (no key); every other handler passes its own entry.
      return contractFor(routeKey)?.public || source.includes(`contract["${routeKey}"]`);
    };
    const mismatched = Object.entries(contract)
      .filter(([routeKey, entry]) => !served(routeKey, entry.handler))
      .map(([routeKey]) => routeKey);
    expect(mismatched).toEqual([]);
    const wired = wiring.routes.filter((route) => !route.staticFiles).map((route) => `${route.method} ${route.path}`);
    expect(wired.sort()).toEqual(Object.keys(contract).sort());
  });

  it("lets every route that writes an audit event or an idempotency record write to the table", () => {
    const readOnly = Object.entries(contract as Record<string, RouteContract>)
      .filter(([, entry]) => (entry.audit || entry.idempotent) && entry.access?.table !== "readWrite")
      .map(([routeKey]) => routeKey);
    expect(readOnly).toEqual([]);
  });

  it("has no API handler that no contract entry names", () => {
    const named = new Set([...Object.values(contract).map((entry) => entry.handler), "authorizer", "get-console"]);
    const files = readdirSync(new URL("../../functions/api/", import.meta.url)).map((file) =>
      file.replace(/\.ts$/, ""),
    );
    expect(files.filter((file) => !named.has(file))).toEqual([]);
  });

  it("has unique operation ids and resolvable $refs", () => {
    const ids = Object.values(document.paths).flatMap((ops) =>
      Object.values(ops).map((op) => (op as { operationId: string }).operationId),
    );
    expect(new Set(ids).size).toBe(ids.length);
    const refs = [...JSON.stringify(document).matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)].map((m) => m[1]);
    for (const ref of refs) expect(document.components.schemas, ref).toHaveProperty(ref as string);
  });

  it("matches the committed openapi.json (run `npm run openapi` after changing the contract)", () => {
    const committed = JSON.parse(readFileSync(new URL("../../openapi.json", import.meta.url), "utf8"));
    expect(committed).toEqual(JSON.parse(JSON.stringify(document)));
  });
});

describe("real responses match the documented schemas", () => {
  let stack: TestStack;
  const exercised = new Set<string>();

  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(() => stack?.stop());

  /** Calls a route by its key, checks status and body against the contract, returns the body. */
  async function call(
    routeKey: string,
    options: {
      path?: Record<string, string>;
      query?: Record<string, string>;
      body?: unknown;
      expectStatus?: number;
    } = {},
  ) {
    const entry = contractFor(routeKey);
    if (!entry) throw new Error(`No contract for ${routeKey}`);
    const [method = "GET", template = "/"] = routeKey.split(" ");
    const path = template.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(options.path?.[name] ?? ""));
    const query = options.query ? `?${new URLSearchParams(options.query)}` : "";
    const response = await stack.api(method, `${path}${query}`, options.body);
    const expected = options.expectStatus ?? entry.successStatus ?? 200;
    expect(response.status, `${routeKey}: ${JSON.stringify(response.body)}`).toBe(expected);
    const schema = expected < 400 ? entry.response : errorBodySchema;
    const result = schema.safeParse(response.body);
    expect(
      result.success ? [] : result.error.issues,
      `${routeKey} answered a body that does not match its documented schema`,
    ).toEqual([]);
    if (expected < 400) exercised.add(routeKey);
    return response.body;
  }

  it("calls, definitions, jobs, values, playground", async () => {
    const created = await call("POST /v1/call", { body: sampleCall({ externalId: "contract-1" }) });
    const callId = created.data.id;
    await call("POST /v1/call", { body: sampleCall({ externalId: "contract-1" }), expectStatus: 409 });
    await call("POST /v1/call", { body: { agentId: 3 }, expectStatus: 400 });
    await call("GET /v1/call", { query: { limit: "5" } });
    await call("GET /v1/call/{callId}", { path: { callId } });
    await call("GET /v1/call/{callId}", { path: { callId: "missing" }, expectStatus: 404 });

    await call("POST /v1/metric/definitions", {
      body: builtInMetric("contract-turns", { kind: "TURN_COUNT" }, "COUNT"),
    });
    await call("POST /v1/metric/definitions", {
      body: llmMetric("contract-sorry", "BOOLEAN", 'Did the agent say "sorry"?'),
    });
    await call("GET /v1/metric/definitions", { query: { limit: "10" } });
    await call("GET /v1/metric/definitions/{idOrSlug}", { path: { idOrSlug: "contract-turns" } });
    await call("GET /v1/metric/definitions/{idOrSlug}/versions", { path: { idOrSlug: "contract-turns" } });
    await call("POST /v1/metric/definitions/{idOrSlug}/archive", { path: { idOrSlug: "contract-turns" } });
    await call("POST /v1/metric/definitions/{idOrSlug}/unarchive", { path: { idOrSlug: "contract-turns" } });
    await call("PUT /v1/metric/definitions/{idOrSlug}", {
      path: { idOrSlug: "contract-turns" },
      body: { description: "Speaker turns" },
    });

    await call("POST /v1/metric/collection-jobs/estimate", {
      body: { callIds: [callId], metrics: [{ id: "contract-turns" }, { id: "contract-sorry" }] },
    });
    const job = await call("POST /v1/metric/collection-jobs", {
      body: { callIds: [callId], metrics: [{ id: "contract-turns" }, { id: "contract-sorry" }] },
    });
    const finished = await waitForJobEnd(stack.api, job.data.id);
    expect(finished.status).toBe("COMPLETED");
    const done = await call("GET /v1/metric/collection-jobs/{jobId}", { path: { jobId: job.data.id } });
    expect(done.data.usage).toBeDefined();
    await call("GET /v1/metric/collection-jobs", { query: { limit: "5" } });
    const values = await call("GET /v1/metric/collection-jobs/{jobId}/metric-values", {
      path: { jobId: job.data.id },
    });
    const sorry = values.data.find((group: { slug: string }) => group.slug === "contract-sorry");
    expect(sorry.values[0].captureStatus).toBe("SUCCESS");
    await call("PUT /v1/metric/collection-jobs/{jobId}/metric-values/{callId}/{metricId}/review", {
      path: { jobId: job.data.id, callId, metricId: "contract-sorry" },
      body: { reviewedValue: false, note: "contract" },
    });
    await call("GET /v1/metric/definitions/{idOrSlug}/agreement", { path: { idOrSlug: "contract-sorry" } });
    await call("GET /v1/call/{callId}/metrics", { path: { callId }, query: { status: "all" } });
    await call("POST /v1/metric/collection-jobs/{jobId}/retry", { path: { jobId: job.data.id }, expectStatus: 400 });
    await call("POST /v1/metric/collection-jobs/{jobId}/cancel", { path: { jobId: job.data.id }, expectStatus: 409 });

    const slow = await call("POST /v1/metric/collection-jobs", {
      body: { callIds: [callId], metrics: [{ id: "contract-sorry" }] },
    });
    await call("POST /v1/metric/collection-jobs/{jobId}/cancel", { path: { jobId: slow.data.id } });

    // A job whose LLM items all end in ERROR, so that retry has something to retry.
    stack.anthropic.configure({ fault: () => "malformed_always" });
    const failing = await call("POST /v1/metric/collection-jobs", {
      body: { callIds: [callId], metrics: [{ id: "contract-sorry" }] },
    });
    expect((await waitForJobEnd(stack.api, failing.data.id)).failedItems).toBe(1);
    stack.anthropic.configure({ fault: undefined });
    const retried = await call("POST /v1/metric/collection-jobs/{jobId}/retry", { path: { jobId: failing.data.id } });
    expect(retried.data.triggeredBy).toBe("RETRY");

    await call("POST /v1/metric/playground", { body: { callId, metric: { id: "contract-sorry" } } });
    await call("POST /v1/metric/playground", {
      body: { callId, metric: builtInMetric("inline-turns", { kind: "TURN_COUNT" }, "COUNT") },
    });
    const compared = await call("POST /v1/metric/playground/judge-modes", {
      body: {
        callId,
        metrics: [{ id: "contract-sorry" }, builtInMetric("inline-turns", { kind: "TURN_COUNT" }, "COUNT")],
      },
    });
    expect(compared.data.metrics).toHaveLength(2);

    await call("GET /v1/custom-metrics/names");
    const range = { startDate: "2026-10-01T00:00:00Z", endDate: "2026-12-01T00:00:00Z" };
    await call("GET /v1/custom-metrics/aggregate", { query: range });
    await call("GET /v1/custom-metrics/aggregate", { query: { ...range, groupBy: "agentId" } });
    await call("GET /v1/custom-metrics/daily", {
      query: { startDate: "2026-11-01", endDate: "2026-11-03", metricNames: "contract-turns" },
    });
    await call("GET /v1/custom-metrics/timeseries", { query: { ...range, metricName: "contract-turns", step: "1d" } });
    await call("GET /v1/custom-metrics/tags", { query: { metricName: "contract-turns" } });
    await call("GET /v1/custom-metrics/sessions/{callId}", { path: { callId } });
    const recorded = await call("POST /v1/custom-metrics/values", {
      body: { values: [{ id: "contract-1", callId, name: "contract_bookings", value: 1 }] },
    });
    expect(recorded.data).toEqual({ recorded: 1, duplicates: 0 });
  });

  it("policies, backfills, webhook secret", async () => {
    const policy = await call("POST /v1/metric/policies", {
      body: { name: "Contract policy", status: "INACTIVE", metrics: [{ id: "contract-turns" }] },
    });
    const policyId = policy.data.id;
    await call("GET /v1/metric/policies");
    await call("GET /v1/metric/policies/{policyId}", { path: { policyId } });
    await call("PUT /v1/metric/policies/{policyId}", { path: { policyId }, body: { name: "Renamed" } });
    await call("DELETE /v1/metric/policies/{policyId}", { path: { policyId } });

    const backfill = await call("POST /v1/backfills", {
      body: { name: "Contract backfill", schedule: "rate(1 day)", metrics: [{ id: "contract-turns" }] },
    });
    const backfillId = backfill.data.id;
    await call("GET /v1/backfills");
    await call("GET /v1/backfills/{backfillId}", { path: { backfillId } });
    await call("PUT /v1/backfills/{backfillId}", { path: { backfillId }, body: { status: "INACTIVE" } });
    await call("POST /v1/backfills/{backfillId}/run", { path: { backfillId } });
    await call("DELETE /v1/backfills/{backfillId}", { path: { backfillId } });

    const forgotten = await call("POST /v1/call", { body: sampleCall({ externalId: "contract-forgotten" }) });
    await call("DELETE /v1/call/{callId}", { path: { callId: forgotten.data.id } });
    await call("DELETE /v1/call/{callId}", { path: { callId: "missing" }, expectStatus: 404 });

    await call("GET /v1/webhook-secret");
    await call("POST /v1/webhook-secret");

    const integration = await call("POST /v1/integrations", {
      body: { provider: "retell", name: "contract", secret: "key_contract_secret" },
    });
    const integrationId = integration.data.id;
    await call("GET /v1/integrations", { query: { limit: "5" } });
    await call("GET /v1/integrations/{integrationId}", { path: { integrationId } });
    await call("PUT /v1/integrations/{integrationId}", {
      path: { integrationId },
      body: { secret: "key_contract_next" },
    });
    await call("DELETE /v1/integrations/{integrationId}", { path: { integrationId } });
    await call("GET /v1/integrations/{integrationId}", { path: { integrationId }, expectStatus: 404 });
    // The platforms' route takes no API key but the platform's signature on the raw body.
    const retell = await call("POST /v1/integrations", {
      body: { provider: "retell", name: "contract events", secret: "key_contract_events" },
    });
    const eventBody = JSON.stringify({ event: "call_started", call: { call_id: "contract-call" } });
    const delivered = await fetch(`${stack.baseUrl}${retell.data.webhookUrl}`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-retell-signature": await sign(eventBody, "key_contract_events"),
      },
      body: eventBody,
    });
    expect(delivered.status).toBe(200);
    const eventsRoute = "POST /v1/integrations/{provider}/{integrationId}/events";
    expect(contractFor(eventsRoute)?.response.safeParse(await delivered.json()).success).toBe(true);
    exercised.add(eventsRoute);
    // Roark's import routes: a platform's payload with an API key.
    await call("POST /v1/retell/call", {
      body: {
        retellCallEndedPayload: {
          event: "call_ended",
          call: { call_id: "contract-retell", agent_id: "agent", start_timestamp: 1_764_597_600_000 },
        },
      },
    });
    await call("POST /v1/vapi/call", {
      body: {
        vapiEndOfCallReportPayload: {
          message: {
            type: "end-of-call-report",
            startedAt: "2026-12-01T14:00:00.000Z",
            call: { id: "contract-vapi", assistantId: "assistant" },
          },
        },
      },
    });
    const key = await call("POST /v1/api-keys", { body: { name: "contract", role: "member" } });
    await call("GET /v1/api-keys");
    await call("DELETE /v1/api-keys/{keyId}", { path: { keyId: key.data.id } });
    const audit = await call("GET /v1/audit-events", { query: { limit: "5" } });
    expect(audit.data[0]).toMatchObject({ action: "api_key.revoked", resourceId: key.data.id });

    await call("GET /v1/organization");
    await call("PUT /v1/organization/settings", { body: { allowedModels: null } });

    const me = await call("GET /v1/me");
    expect(me.data).toMatchObject({ orgId: stack.orgId, role: "admin" });
  });

  it("serves the document at GET /openapi.json without an API key", async () => {
    const response = await fetch(`${stack.baseUrl}/openapi.json`);
    expect(response.status).toBe(200);
    const served = (await response.json()) as { openapi: string; paths: unknown };
    expect(served.openapi).toBe("3.1.0");
    expect(served.paths).toEqual(JSON.parse(JSON.stringify(buildOpenApi().paths)));
    exercised.add("GET /openapi.json");
  });

  it("exercised every route of the contract", () => {
    expect(Object.keys(contract).filter((key) => !exercised.has(key))).toEqual([]);
  });
});
