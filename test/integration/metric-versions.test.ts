/**
 * Metric definitions as a migrating user expects them: a slug derived from the name when
 * none is given; versions listed, and run by a job that names one, so two versions can be
 * compared on the same calls; archived without breaking what runs them.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getMetric, updateMetric } from "../../shared/store/metrics.ts";
import { builtInMetric, createCalls, createMetrics, jobValues } from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitForJobEnd } from "../support/stack.ts";

describe("metric definition slugs, versions and archiving", () => {
  let stack: TestStack;
  let callIds: string[];
  let metricId: string;
  beforeAll(async () => {
    stack = await startTestStack();
    callIds = await createCalls(stack.api, 2);
    const [created] = await createMetrics(stack.api, [
      builtInMetric("ver-words", { kind: "KEYWORD_MATCH_COUNT", keywords: ["sorry"] }, "COUNT"),
    ]);
    metricId = created!.id;
    const updated = await stack.api("PUT", "/v1/metric/definitions/ver-words", {
      builtIn: { kind: "KEYWORD_MATCH_COUNT", keywords: ["refund"] },
    });
    expect(updated.body.data.version).toBe(2);
  });
  afterAll(() => stack?.stop());

  it("derives a slug from the name when none is given, unique in the organization", async () => {
    const body = { name: "Agent Verified Caller's ID?", calculationType: "BUILT_IN", outputType: "COUNT" };
    const builtIn = { kind: "TURN_COUNT" };
    const first = await stack.api("POST", "/v1/metric/definitions", { ...body, builtIn });
    expect(first.status).toBe(201);
    expect(first.body.data.slug).toBe("agent-verified-caller-s-id");
    const second = await stack.api("POST", "/v1/metric/definitions", { ...body, builtIn });
    expect(second.body.data.slug).toBe("agent-verified-caller-s-id-2");
    expect((await stack.api("GET", "/v1/metric/definitions/agent-verified-caller-s-id-2")).body.data.id).toBe(
      second.body.data.id,
    );
    const symbols = await stack.api("POST", "/v1/metric/definitions", { ...body, name: "???", builtIn });
    expect(symbols.body.data.slug).toBe("metric");
    // Another organization derives the same slug: slugs are unique per organization.
    const other = await stack.newOrganization("Derives its own slugs");
    const elsewhere = await other.api("POST", "/v1/metric/definitions", { ...body, builtIn });
    expect(elsewhere.body.data.slug).toBe("agent-verified-caller-s-id");
    // A slug given and taken is still a 409.
    const taken = await stack.api("POST", "/v1/metric/definitions", { ...body, slug: "metric", builtIn });
    expect(taken.status).toBe(409);
  });

  it("lists a definition's versions newest first, by id or slug, page by page", async () => {
    const bySlug = await stack.api("GET", "/v1/metric/definitions/ver-words/versions");
    expect(bySlug.status).toBe(200);
    expect(bySlug.body.data.map((v: { version: number }) => v.version)).toEqual([2, 1]);
    expect(bySlug.body.data[1]).toMatchObject({ id: metricId, builtIn: { keywords: ["sorry"] } });
    const first = await stack.api("GET", `/v1/metric/definitions/${metricId}/versions?limit=1`);
    expect(first.body.data.map((v: { version: number }) => v.version)).toEqual([2]);
    const next = await stack.api(
      "GET",
      `/v1/metric/definitions/${metricId}/versions?limit=1&after=${first.body.pagination.nextCursor}`,
    );
    expect(next.body.data.map((v: { version: number }) => v.version)).toEqual([1]);
    expect((await stack.api("GET", "/v1/metric/definitions/missing/versions")).status).toBe(404);
    const other = await stack.newOrganization("Cannot see others' versions");
    expect((await other.api("GET", `/v1/metric/definitions/${metricId}/versions`)).status).toBe(404);
  });

  it("runs the version a job names, so two versions compare on the same calls", async () => {
    const run = async (metric: object) => {
      const created = await stack.api("POST", "/v1/metric/collection-jobs", { callIds, metrics: [metric] });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      const job = await waitForJobEnd(stack.api, created.body.data.id);
      expect(job.status).toBe("COMPLETED");
      return { job, values: await jobValues(stack.api, job.id) };
    };
    const v1 = await run({ id: "ver-words", version: 1 });
    const latest = await run({ id: metricId });
    expect(v1.job.metrics).toEqual([expect.objectContaining({ id: metricId, version: 1 })]);
    expect(latest.job.metrics).toEqual([expect.objectContaining({ id: metricId, version: 2 })]);
    // The sample calls say "sorry" twice and "refund" once.
    expect(v1.values.map((value) => [value.metricVersion, value.value])).toEqual([
      [1, 2],
      [1, 2],
    ]);
    expect(latest.values.map((value) => [value.metricVersion, value.value])).toEqual([
      [2, 1],
      [2, 1],
    ]);
    const estimate = await stack.api("POST", "/v1/metric/collection-jobs/estimate", {
      callIds,
      metrics: [{ id: metricId, version: 1 }],
    });
    expect(estimate.status).toBe(200);
  });

  it("refuses an unknown version, and two versions of one definition in one job, with clear 400s", async () => {
    const unknown = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds,
      metrics: [{ id: "ver-words", version: 7 }],
    });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toContain("Unknown metric versions: ver-words@7");
    expect(unknown.body.error.details.unknownVersions).toEqual([{ id: "ver-words", version: 7 }]);
    const both = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds,
      metrics: [
        { id: "ver-words", version: 1 },
        { id: metricId, version: 2 },
      ],
    });
    expect(both.status).toBe(400);
    expect(both.body.error.message).toContain("create a job per version");
    const estimate = await stack.api("POST", "/v1/metric/collection-jobs/estimate", {
      callIds,
      metrics: [{ id: "ver-words", version: 7 }],
    });
    expect(estimate.status).toBe(400);
  });

  it("archives a definition: new work refuses it, what runs it goes on, and it comes back when unarchived", async () => {
    await createMetrics(stack.api, [builtInMetric("arch-turns", { kind: "TURN_COUNT" }, "COUNT")]);
    const running = await stack.api("POST", "/v1/metric/collection-jobs", { callIds, metrics: [{ id: "arch-turns" }] });
    const archived = await stack.api("POST", "/v1/metric/definitions/arch-turns/archive");
    expect(archived.status).toBe(200);
    expect(archived.body.data.archivedAt).toEqual(expect.any(String));
    const again = await stack.api("POST", "/v1/metric/definitions/arch-turns/archive");
    expect(again.body.data.archivedAt).toBe(archived.body.data.archivedAt);
    expect((await waitForJobEnd(stack.api, running.body.data.id)).status).toBe("COMPLETED");

    const slugs = async (query = "") =>
      (await stack.api("GET", `/v1/metric/definitions?limit=100${query}`)).body.data.map(
        (definition: { slug: string }) => definition.slug,
      );
    expect(await slugs()).not.toContain("arch-turns");
    expect(await slugs("&archived=true")).toEqual(["arch-turns"]);
    expect((await stack.api("GET", "/v1/metric/definitions/arch-turns")).body.data.archivedAt).toBe(
      archived.body.data.archivedAt,
    );

    const job = await stack.api("POST", "/v1/metric/collection-jobs", { callIds, metrics: [{ id: "arch-turns" }] });
    expect(job.status).toBe(400);
    expect(job.body.error.message).toContain("Archived metric definitions cannot start new work: arch-turns");
    const estimate = await stack.api("POST", "/v1/metric/collection-jobs/estimate", {
      callIds,
      metrics: [{ id: "arch-turns" }],
    });
    expect(estimate.status).toBe(400);
    const policy = await stack.api("POST", "/v1/metric/policies", {
      name: "Uses an archived metric",
      status: "INACTIVE",
      metrics: [{ id: "arch-turns" }],
    });
    expect(policy.status).toBe(400);
    expect((await stack.api("PUT", "/v1/metric/definitions/arch-turns", { name: "Renamed" })).status).toBe(409);
    // The slug stays taken.
    const sameSlug = await stack.api(
      "POST",
      "/v1/metric/definitions",
      builtInMetric("arch-turns", { kind: "TURN_COUNT" }, "COUNT"),
    );
    expect(sameSlug.status).toBe(409);

    // An update that read the definition before it was archived does not bring it back.
    await stack.api("POST", "/v1/metric/definitions/arch-turns/unarchive");
    const readBefore = await getMetric(stack.orgId, "arch-turns");
    await stack.api("POST", "/v1/metric/definitions/arch-turns/archive");
    await expect(updateMetric(stack.orgId, readBefore!, { name: "Late" })).rejects.toThrow(/archived concurrently/);
    expect(await slugs("&archived=true")).toEqual(["arch-turns"]);

    const back = await stack.api("POST", "/v1/metric/definitions/arch-turns/unarchive");
    expect(back.status).toBe(200);
    expect(back.body.data.archivedAt).toBeUndefined();
    expect(await slugs()).toContain("arch-turns");
    expect(await slugs("&archived=true")).toEqual([]);
    const after = await stack.api("POST", "/v1/metric/collection-jobs", { callIds, metrics: [{ id: "arch-turns" }] });
    expect(after.status).toBe(201);
    expect((await stack.api("POST", "/v1/metric/definitions/missing/archive")).status).toBe(404);

    const actions = (await stack.api("GET", "/v1/audit-events")).body.data.map(
      (event: { action: string }) => event.action,
    );
    expect(actions).toEqual(expect.arrayContaining(["metric_definition.archived", "metric_definition.unarchived"]));
  });
});
