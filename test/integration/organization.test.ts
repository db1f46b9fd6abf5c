/** The organization's settings, and the models it allows its LLM-judged metrics. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client } from "../../sdk/src/index.ts";
import { DEFAULT_JUDGE_MODEL } from "../../shared/config.ts";
import { createApiKey } from "../../shared/store/organizations.ts";
import { builtInMetric, createCalls, jobValues, llmMetric } from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitForJobEnd } from "../support/stack.ts";

const ALLOWED = "claude-haiku-4-5";

describe("organization settings", () => {
  let stack: TestStack;
  let callId: string;
  beforeAll(async () => {
    stack = await startTestStack();
    [callId] = (await createCalls(stack.api, 1)) as [string];
  });
  afterAll(() => stack?.stop());

  it("shows the organization with its settings, changed by admins only", async () => {
    const shown = await stack.api("GET", "/v1/organization");
    expect(shown.status).toBe(200);
    expect(shown.body.data).toMatchObject({ id: stack.orgId, name: "Test org", settings: {} });
    const { apiKey } = await createApiKey(stack.orgId, { role: "member", name: "member" });
    const byMember = await stack.client(apiKey)("PUT", "/v1/organization/settings", { allowedModels: [ALLOWED] });
    expect(byMember.status).toBe(403);
    const invalid = await stack.api("PUT", "/v1/organization/settings", { allowedModels: [] });
    expect(invalid.status).toBe(400);
    const unknown = await stack.api("PUT", "/v1/organization/settings", { budget: 5 });
    expect(unknown.status).toBe(400);
  });

  it("refuses definitions, jobs and playground runs that would use a model the organization does not allow", async () => {
    // Saved before the restriction: jobs and playground runs with it are refused after it.
    const before = await stack.api("POST", "/v1/metric/definitions", llmMetric("models-before", "BOOLEAN", "Polite?"));
    expect(before.status).toBe(201);
    const set = await stack.api("PUT", "/v1/organization/settings", { allowedModels: [ALLOWED] });
    expect(set.body.data.settings).toEqual({ allowedModels: [ALLOWED] });

    const otherModel = await stack.api(
      "POST",
      "/v1/metric/definitions",
      llmMetric("models-other", "BOOLEAN", "Polite?", { model: "claude-opus-4-5" }),
    );
    expect(otherModel.status).toBe(400);
    expect(otherModel.body.error.message).toContain(`allows only the models ${ALLOWED}`);
    expect(otherModel.body.error.details.refused).toEqual([{ slug: "models-other", model: "claude-opus-4-5" }]);
    // No model named: the default judge model, which is not allowed either.
    const defaulted = await stack.api("POST", "/v1/metric/definitions", llmMetric("models-default", "BOOLEAN", "?"));
    expect(defaulted.status).toBe(400);
    expect(defaulted.body.error.message).toContain(DEFAULT_JUDGE_MODEL);
    const allowed = await stack.api(
      "POST",
      "/v1/metric/definitions",
      llmMetric("models-allowed", "BOOLEAN", "Polite?", { model: ALLOWED }),
    );
    expect(allowed.status).toBe(201);
    const builtIn = await stack.api(
      "POST",
      "/v1/metric/definitions",
      builtInMetric("models-turns", { kind: "TURN_COUNT" }, "COUNT"),
    );
    expect(builtIn.status).toBe(201);
    const moved = await stack.api("PUT", "/v1/metric/definitions/models-allowed", { model: "claude-opus-4-5" });
    expect(moved.status).toBe(400);

    const job = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds: [callId],
      metrics: [{ id: "models-before" }, { id: "models-allowed" }],
    });
    expect(job.status).toBe(400);
    expect(job.body.error.details.refused).toEqual([{ slug: "models-before", model: DEFAULT_JUDGE_MODEL }]);
    const allowedJob = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds: [callId],
      metrics: [{ id: "models-allowed" }, { id: "models-turns" }],
    });
    expect(allowedJob.status).toBe(201);

    const saved = await stack.api("POST", "/v1/metric/playground", { callId, metric: { id: "models-before" } });
    expect(saved.status).toBe(400);
    const inline = await stack.api("POST", "/v1/metric/playground", {
      callId,
      metric: llmMetric("inline", "BOOLEAN", "Polite?", { model: "claude-opus-4-5" }),
    });
    expect(inline.status).toBe(400);
    const compared = await stack.api("POST", "/v1/metric/playground/judge-modes", {
      callId,
      metrics: [{ id: "models-before" }],
    });
    expect(compared.status).toBe(400);

    const policy = await stack.api("POST", "/v1/metric/policies", {
      name: "Uses a refused model",
      status: "ACTIVE",
      metrics: [{ id: "models-before" }],
      conditions: [],
    });
    expect(policy.status).toBe(400);

    // null lifts the restriction.
    const cleared = await stack.api("PUT", "/v1/organization/settings", { allowedModels: null });
    expect(cleared.body.data.settings).toEqual({});
    const afterClear = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds: [callId],
      metrics: [{ id: "models-before" }],
    });
    expect(afterClear.status).toBe(201);
  });

  it("records ERROR, without calling the model, the items of a backfill saved before the restriction", async () => {
    const org = await stack.newOrganization("Restricts models later");
    const [laterCallId] = (await createCalls(org.api, 1)) as [string];
    for (const definition of [
      llmMetric("later-refused", "BOOLEAN", "Polite?", { model: "claude-opus-4-5" }),
      builtInMetric("later-turns", { kind: "TURN_COUNT" }, "COUNT"),
    ]) {
      expect((await org.api("POST", "/v1/metric/definitions", definition)).status).toBe(201);
    }
    const saved = await org.api("POST", "/v1/backfills", {
      name: "Saved before the restriction",
      schedule: "rate(1 day)",
      metrics: [{ id: "later-refused" }, { id: "later-turns" }],
    });
    expect(saved.status).toBe(201);
    await org.api("PUT", "/v1/organization/settings", { allowedModels: [ALLOWED] });

    const run = await org.api("POST", `/v1/backfills/${saved.body.data.id}/run`);
    expect(run.body.data).toMatchObject({ status: "started", items: 2 });
    const job = await waitForJobEnd(org.api, run.body.data.jobId);
    expect(job).toMatchObject({ completedItems: 1, failedItems: 1 });
    const values = await jobValues(org.api, run.body.data.jobId);
    const bySlug = Object.fromEntries(values.map((value) => [value.slug, value]));
    expect(bySlug["later-turns"]).toMatchObject({ callId: laterCallId, captureStatus: "SUCCESS" });
    expect(bySlug["later-refused"].captureStatus).toBe("ERROR");
    expect(bySlug["later-refused"].errorMessage).toContain("does not allow the model claude-opus-4-5");
    // (Other tests' jobs may still be calling other models.)
    expect(stack.anthropic.requests().filter((request) => request.model === "claude-opus-4-5")).toEqual([]);
  });

  it("keeps each organization to its API rate: 429 with Retry-After beyond its burst, other organizations unaffected", async () => {
    const limited = await stack.newOrganization("Rate-limited");
    const neighbour = await stack.newOrganization("Neighbour");
    const set = await limited.api("PUT", "/v1/organization/settings", {
      apiRateLimit: { requestsPerSecond: 2, burst: 4 },
    });
    expect(set.status).toBe(200);
    const started = Date.now();
    const answers = await Promise.all(Array.from({ length: 10 }, () => limited.api("GET", "/v1/call")));
    const elapsedSeconds = (Date.now() - started) / 1000;
    const statuses = answers.map((answer) => answer.status).sort();
    // The burst (4) and at most the tokens refilled (2/s) while the requests ran.
    expect(statuses.filter((status) => status === 200).length).toBeGreaterThanOrEqual(4);
    expect(statuses.filter((status) => status === 200).length).toBeLessThanOrEqual(4 + Math.ceil(2 * elapsedSeconds));
    const refused = answers.find((answer) => answer.status === 429);
    expect(refused?.body.error.code).toBe("rate_limited");
    expect(Number(refused?.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    const others = await Promise.all(Array.from({ length: 10 }, () => neighbour.api("GET", "/v1/call")));
    expect(others.map((answer) => (answer.status === 200 ? 200 : answer.body))).toEqual(Array(10).fill(200));

    // The SDK waits as told and gets through.
    const client = new Client({ baseURL: stack.baseUrl, apiKey: limited.apiKey, maxRetries: 10 });
    const listed = await Promise.all(Array.from({ length: 6 }, () => client.calls.list()));
    expect(listed).toHaveLength(6);
  });

  it("restricts analytics to admin keys when the organization says so, as VoiceRun restricts them to owners and admins", async () => {
    const restricted = await stack.newOrganization("Analytics for admins");
    const { apiKey } = await createApiKey(restricted.orgId, { role: "member", name: "member" });
    const member = stack.client(apiKey);
    const analyticsRoutes = [
      "/v1/custom-metrics/names",
      "/v1/custom-metrics/aggregate?startDate=2026-01-01&endDate=2026-01-02",
      "/v1/custom-metrics/tags",
    ];
    for (const route of analyticsRoutes) expect((await member("GET", route)).status).toBe(200);

    const set = await restricted.api("PUT", "/v1/organization/settings", { analyticsAdminOnly: true });
    expect(set.body.data.settings).toEqual({ analyticsAdminOnly: true });
    for (const route of analyticsRoutes) {
      const refused = await member("GET", route);
      expect(refused.status).toBe(403);
      expect(refused.body.error.message).toContain("analyticsAdminOnly");
      expect((await restricted.api("GET", route)).status).toBe(200);
    }
    // Other routes and other organizations are untouched.
    expect((await member("GET", "/v1/call")).status).toBe(200);
    const { apiKey: neighbourKey } = await createApiKey(stack.orgId, { role: "member", name: "neighbour member" });
    expect((await stack.client(neighbourKey)("GET", "/v1/custom-metrics/names")).status).toBe(200);

    await restricted.api("PUT", "/v1/organization/settings", { analyticsAdminOnly: null });
    expect((await member("GET", analyticsRoutes[0] as string)).status).toBe(200);
  });
});
