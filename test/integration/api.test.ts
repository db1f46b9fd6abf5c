import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listMatchingCalls } from "../../shared/store/calls.ts";
import type { PageKey } from "../../shared/store/query.ts";
import { builtInMetric, createCalls, createMetrics, sampleCall, standardMetrics } from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitForJobEnd } from "../support/stack.ts";

describe("HTTP API on the local engines", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(() => stack?.stop());

  describe("authentication", () => {
    it("answers 401 without a key, with a malformed header, and with an unknown key", async () => {
      for (const api of [stack.client(undefined), stack.client("x"), stack.client("mcj_unknown_key_1234567890")]) {
        const response = await api("GET", "/v1/call");
        expect(response.status).toBe(401);
        expect(response.body.error.code).toBe("unauthorized");
      }
    });

    it("tells each key which organization and role it has", async () => {
      const other = await stack.newOrganization("Who am I");
      expect((await stack.api("GET", "/v1/me")).body.data).toMatchObject({ orgId: stack.orgId, role: "admin" });
      expect((await other.api("GET", "/v1/me")).body.data).toMatchObject({ orgId: other.orgId, role: "admin" });
      expect((await stack.client(undefined)("GET", "/v1/me")).status).toBe(401);
    });
  });

  describe("calls", () => {
    it("creates, reads and lists calls newest first with cursors", async () => {
      const ids = await createCalls(stack.api, 5);
      const got = await stack.api("GET", `/v1/call/${ids[0]}`);
      expect(got.status).toBe(200);
      expect(got.body.data).toMatchObject({
        id: ids[0],
        agentId: "agent-support",
        transcript: sampleCall().transcript,
      });

      const first = await stack.api("GET", "/v1/call?limit=2");
      expect(first.body.data.map((c: any) => c.id)).toEqual([ids[4], ids[3]]);
      expect(first.body.data[0].transcript).toBeUndefined();
      expect(first.body.data[0].segmentCount).toBe(4);
      expect(first.body.pagination.hasMore).toBe(true);
      const second = await stack.api("GET", `/v1/call?limit=2&after=${first.body.pagination.nextCursor}`);
      expect(second.body.data.map((c: any) => c.id)).toEqual([ids[2], ids[1]]);
    });

    it("stores and returns a transcript of over 2 MB intact", async () => {
      const segments = Array.from({ length: 7_000 }, (_, i) => ({
        role: i % 2 ? "CUSTOMER" : "AGENT",
        // Varied text so compression cannot make this trivially small.
        text: `Segment ${i}: ${Buffer.from(String(i * 7919)).toString("base64")} `.repeat(8) + "é".repeat(20),
        startOffsetMs: i * 1000,
        endOffsetMs: i * 1000 + 900,
      }));
      const call = sampleCall({ transcript: segments as never, externalId: "big-call" });
      expect(JSON.stringify(call).length).toBeGreaterThan(2_000_000);
      const created = await stack.api("POST", "/v1/call", call);
      expect(created.status).toBe(201);
      const got = await stack.api("GET", `/v1/call/${created.body.data.id}`);
      expect(got.body.data.transcript).toEqual(segments);
    });

    it("rejects invalid calls with per-field details", async () => {
      const response = await stack.api("POST", "/v1/call", {
        ...sampleCall(),
        agentId: "",
        transcript: [{ role: "BOT", text: "hi", startOffsetMs: 0, endOffsetMs: 1 }],
      });
      expect(response.status).toBe(400);
      expect(response.body.error.code).toBe("validation_error");
      const fields = response.body.error.details.map((d: any) => d.field);
      expect(fields).toContain("body.agentId");
      expect(fields).toContain("body.transcript.0.role");
    });

    it("rejects bad JSON, a missing body and endedAt before startedAt", async () => {
      expect((await stack.api("POST", "/v1/call", "{oops")).status).toBe(400);
      expect((await stack.api("POST", "/v1/call")).status).toBe(400);
      const backwards = await stack.api("POST", "/v1/call", {
        ...sampleCall(),
        endedAt: "2020-01-01T00:00:00Z",
      });
      expect(backwards.status).toBe(400);
      expect(backwards.body.error.details[0].field).toBe("body.endedAt");
    });

    it("answers 409 for a duplicate externalId, naming the existing call", async () => {
      const first = await stack.api("POST", "/v1/call", sampleCall({ externalId: "ext-1" }));
      const second = await stack.api("POST", "/v1/call", sampleCall({ externalId: "ext-1" }));
      expect(second.status).toBe(409);
      expect(second.body.error.details.callId).toBe(first.body.data.id);
    });

    it("answers 413 for a body over the request limit", async () => {
      const huge = { ...sampleCall(), properties: { blob: "x".repeat(1000) }, pad: "y".repeat(7 * 1024 * 1024) };
      const response = await stack.api("POST", "/v1/call", huge);
      expect(response.status).toBe(413);
      expect(response.body.error.code).toBe("payload_too_large");
    });

    it("answers 404 for unknown calls and 400 for a bad limit or cursor", async () => {
      expect((await stack.api("GET", "/v1/call/nope")).status).toBe(404);
      expect((await stack.api("GET", "/v1/call/nope/metrics")).status).toBe(404);
      expect((await stack.api("GET", "/v1/call?limit=0")).status).toBe(400);
      expect((await stack.api("GET", "/v1/call?limit=abc")).status).toBe(400);
      expect((await stack.api("GET", "/v1/call?after=garbage")).status).toBe(400);
      const forged = Buffer.from(JSON.stringify({ gsi1pk: "ORG#other#CALLS", gsi1sk: "x", pk: "a", sk: "b" })).toString(
        "base64url",
      );
      expect((await stack.api("GET", `/v1/call?after=${forged}`)).status).toBe(400);
    });
  });

  describe("metric definitions", () => {
    it("creates, reads by id and slug, lists, and versions on update", async () => {
      const [created] = await createMetrics(stack.api, [builtInMetric("wpm", { kind: "WORDS_PER_MINUTE" })]);
      expect(created).toMatchObject({ slug: "wpm", version: 1, description: "", supportedContexts: ["CALL"] });
      expect((await stack.api("GET", `/v1/metric/definitions/${created!.id}`)).body.data.slug).toBe("wpm");
      expect((await stack.api("GET", "/v1/metric/definitions/wpm")).body.data.id).toBe(created!.id);

      const updated = await stack.api("PUT", "/v1/metric/definitions/wpm", {
        name: "Words per minute",
        slug: "agent-wpm",
      });
      expect(updated.status).toBe(200);
      expect(updated.body.data).toMatchObject({
        id: created!.id,
        version: 2,
        name: "Words per minute",
        slug: "agent-wpm",
      });
      expect((await stack.api("GET", "/v1/metric/definitions/wpm")).status).toBe(404);
      expect((await stack.api("GET", "/v1/metric/definitions/agent-wpm")).body.data.version).toBe(2);

      const list = await stack.api("GET", "/v1/metric/definitions?limit=100");
      expect(list.body.data.map((d: any) => d.slug)).toContain("agent-wpm");
    });

    it("answers 409 for a taken slug on create and on rename", async () => {
      await createMetrics(stack.api, [builtInMetric("taken", { kind: "TURN_COUNT" }, "COUNT")]);
      const duplicate = await stack.api(
        "POST",
        "/v1/metric/definitions",
        builtInMetric("taken", { kind: "TURN_COUNT" }, "COUNT"),
      );
      expect(duplicate.status).toBe(409);
      const [other] = await createMetrics(stack.api, [builtInMetric("other", { kind: "TURN_COUNT" }, "COUNT")]);
      const rename = await stack.api("PUT", `/v1/metric/definitions/${other!.id}`, { slug: "taken" });
      expect(rename.status).toBe(409);
      expect((await stack.api("GET", "/v1/metric/definitions/other")).body.data.version).toBe(1);
    });

    it("validates definitions, including the merged result of an update", async () => {
      const cases = [
        { ...builtInMetric("Bad Slug", { kind: "TURN_COUNT" }) },
        { ...builtInMetric("no-config", { kind: "TURN_COUNT" }), builtIn: undefined },
        builtInMetric("bad-regex", { kind: "KEYWORD_MATCH_COUNT", pattern: "(" }),
        { ...builtInMetric("scale", { kind: "TURN_COUNT" }), outputType: "SCALE" },
        { slug: "judge", name: "judge", calculationType: "LLM_JUDGE", outputType: "BOOLEAN" },
        { ...builtInMetric("extra", { kind: "TURN_COUNT" }), unexpected: true },
      ];
      for (const body of cases) {
        const response = await stack.api("POST", "/v1/metric/definitions", body);
        expect(response.status, JSON.stringify(body)).toBe(400);
        expect(response.body.error.details.length).toBeGreaterThan(0);
      }
      const [metric] = await createMetrics(stack.api, [builtInMetric("valid", { kind: "TURN_COUNT" }, "COUNT")]);
      const broken = await stack.api("PUT", `/v1/metric/definitions/${metric!.id}`, { outputType: "TEXT" });
      expect(broken.status).toBe(400);
      expect((await stack.api("PUT", `/v1/metric/definitions/${metric!.id}`, {})).status).toBe(400);
      expect((await stack.api("PUT", "/v1/metric/definitions/missing", { name: "x" })).status).toBe(404);
    });
  });

  describe("collection jobs", () => {
    it("answers 400 naming unknown call and metric ids, and writes nothing", async () => {
      const [callId] = await createCalls(stack.api, 1);
      const [metric] = await createMetrics(stack.api, [{ ...standardMetrics[0], slug: "dur-400" }]);
      const before = await stack.api("GET", "/v1/metric/collection-jobs?limit=50");
      const response = await stack.api("POST", "/v1/metric/collection-jobs", {
        callIds: [callId, "missing-call"],
        metrics: [{ id: metric!.id }, { id: "missing-metric" }],
      });
      expect(response.status).toBe(400);
      expect(response.body.error.message).toContain("missing-call");
      expect(response.body.error.message).toContain("missing-metric");
      expect(response.body.error.details).toEqual({
        unknownMetricIds: ["missing-metric"],
        unknownCallIds: ["missing-call"],
      });
      const after = await stack.api("GET", "/v1/metric/collection-jobs?limit=50");
      expect(after.body.data).toHaveLength(before.body.data.length);
    });

    it("validates job bodies: empty lists, too many ids, unknown fields", async () => {
      const bodies = [
        { callIds: [], metrics: [{ id: "x" }] },
        { callIds: ["a"], metrics: [] },
        { callIds: Array.from({ length: 10_001 }, (_, i) => `c${i}`), metrics: [{ id: "x" }] },
        { callIds: ["a"], metrics: Array.from({ length: 21 }, (_, i) => ({ id: `m${i}` })) },
        { callIds: ["a"], metrics: [{ id: "x" }], webhook: "typo" },
      ];
      for (const body of bodies) expect((await stack.api("POST", "/v1/metric/collection-jobs", body)).status).toBe(400);
    });

    it("lists jobs newest first with limit, cursor and status filter", async () => {
      const [callId] = await createCalls(stack.api, 1);
      const [metric] = await createMetrics(stack.api, [{ ...standardMetrics[0], slug: "dur-list" }]);
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const { body } = await stack.api("POST", "/v1/metric/collection-jobs", {
          callIds: [callId],
          metrics: [{ id: metric!.id }],
        });
        ids.push(body.data.id);
      }
      await stack.api("POST", `/v1/metric/collection-jobs/${ids[1]}/cancel`);
      const page1 = await stack.api("GET", "/v1/metric/collection-jobs?limit=2");
      expect(page1.body.data.map((j: any) => j.id)).toEqual([ids[2], ids[1]]);
      const page2 = await stack.api(
        "GET",
        `/v1/metric/collection-jobs?limit=1&after=${page1.body.pagination.nextCursor}`,
      );
      expect(page2.body.data.map((j: any) => j.id)).toEqual([ids[0]]);
      // A one-item job may finish before the cancel reaches it: filter by the status it has.
      const { status } = (await stack.api("GET", `/v1/metric/collection-jobs/${ids[1]}`)).body.data;
      expect(["CANCELED", "COMPLETED"]).toContain(status);
      const filtered = await stack.api("GET", `/v1/metric/collection-jobs?status=${status}`);
      expect(filtered.body.data.map((j: any) => j.id)).toContain(ids[1]);
      expect(filtered.body.data.every((j: any) => j.status === status)).toBe(true);
      expect((await stack.api("GET", "/v1/metric/collection-jobs?status=DONE")).status).toBe(400);
      expect((await stack.api("GET", "/v1/metric/collection-jobs?limit=51")).status).toBe(400);
    });

    it("answers only successful values unless asked for all, as Roark does, on the job and on the call", async () => {
      // The agent-only call has no customer turn to answer: its latency is DATA_MISSING.
      const [answered] = await createCalls(stack.api, 1);
      const [agentOnly] = await createCalls(stack.api, 1, {
        transcript: [{ role: "AGENT", text: "Hello? Anyone there?", startOffsetMs: 0, endOffsetMs: 2000 }],
      });
      const [latency] = await createMetrics(stack.api, [
        builtInMetric("latency-roark", { kind: "AGENT_RESPONSE_LATENCY_MEAN" }),
      ]);
      const created = await stack.api("POST", "/v1/metric/collection-jobs", {
        callIds: [answered, agentOnly],
        metrics: [{ id: latency!.id }],
      });
      const jobId = created.body.data.id as string;
      expect(await waitForJobEnd(stack.api, jobId)).toMatchObject({ status: "COMPLETED", completedItems: 2 });
      const valuesOf = async (query: string) => {
        const { body } = await stack.api("GET", `/v1/metric/collection-jobs/${jobId}/metric-values${query}`);
        return body.data.flatMap((group: { values: { callId: string; captureStatus: string }[] }) => group.values);
      };
      expect((await valuesOf("")).map((v: any) => [v.callId, v.captureStatus])).toEqual([[answered, "SUCCESS"]]);
      const all = await valuesOf("?status=all");
      expect(all.map((v: any) => v.captureStatus).sort()).toEqual(["DATA_MISSING", "SUCCESS"]);
      expect(all.find((v: any) => v.captureStatus === "DATA_MISSING")).not.toHaveProperty("value");
      const callValues = async (callId: string, query: string) =>
        (await stack.api("GET", `/v1/call/${callId}/metrics${query}`)).body.data as unknown[];
      expect(await callValues(agentOnly as string, "")).toEqual([]);
      // A call's values have the job's grouped shape: one group per metric definition version.
      const [group] = (await callValues(agentOnly as string, "?status=all")) as any[];
      expect(group).toMatchObject({
        metricDefinitionId: latency!.id,
        slug: "latency-roark",
        metricId: "latency-roark@1",
        type: "NUMERIC",
        values: [expect.objectContaining({ callId: agentOnly, captureStatus: "DATA_MISSING" })],
      });
      const [answeredGroup] = (await callValues(answered as string, "")) as any[];
      expect(answeredGroup.values).toEqual([expect.objectContaining({ jobId, captureStatus: "SUCCESS" })]);
    });

    it("finds a call by its externalId, in this organization only", async () => {
      const [callId] = await createCalls(stack.api, 1, { externalId: "crm-4711" });
      await createCalls(stack.api, 2);
      const found = await stack.api("GET", "/v1/call?externalId=crm-4711");
      expect(found.status).toBe(200);
      expect(found.body.data.map((c: any) => [c.id, c.externalId])).toEqual([[callId, "crm-4711"]]);
      expect(found.body.data[0]).toMatchObject({ agentId: "agent-support", segmentCount: 4 });
      expect(found.body.pagination).toEqual({ hasMore: false, nextCursor: null });
      expect((await stack.api("GET", "/v1/call?externalId=crm-0000")).body.data).toEqual([]);
      const other = await stack.newOrganization("Other org for externalId");
      expect((await other.api("GET", "/v1/call?externalId=crm-4711")).body.data).toEqual([]);
    });

    it("filters the call list by agent, start time and properties, page by page", async () => {
      const at = (minute: number) => new Date(Date.UTC(2026, 0, 5, 9, minute)).toISOString();
      const make = (agentId: string, minute: number, region: string) =>
        createCalls(stack.api, 1, {
          agentId,
          startedAt: at(minute),
          endedAt: at(minute + 1),
          properties: { region, source: "filter-test" },
        }).then(([id]) => id as string);
      const a1 = await make("agent-filter-a", 0, "EU");
      await make("agent-filter-b", 5, "EU");
      const a2 = await make("agent-filter-a", 10, "US");
      const a3 = await make("agent-filter-a", 20, "EU");
      const ids = async (query: string) => {
        const { status, body } = await stack.api("GET", `/v1/call?${query}`);
        expect(status, JSON.stringify(body)).toBe(200);
        return body.data.map((c: { id: string }) => c.id);
      };
      expect(await ids("agentId=agent-filter-a")).toEqual([a3, a2, a1]);
      const eu = encodeURIComponent('{"region":"EU","source":"filter-test"}');
      expect(await ids(`agentId=agent-filter-a&properties=${eu}`)).toEqual([a3, a1]);
      expect(await ids(`agentId=agent-filter-a&startedAfter=${at(5)}&startedBefore=${at(20)}`)).toEqual([a2]);
      // One match per page: each cursor goes on after the call it returned.
      const first = await stack.api("GET", "/v1/call?agentId=agent-filter-a&limit=1");
      expect(first.body.data.map((c: { id: string }) => c.id)).toEqual([a3]);
      expect(first.body.pagination.hasMore).toBe(true);
      const second = await stack.api(
        "GET",
        `/v1/call?agentId=agent-filter-a&limit=2&after=${first.body.pagination.nextCursor}`,
      );
      expect(second.body.data.map((c: { id: string }) => c.id)).toEqual([a2, a1]);
      expect(second.body.pagination).toEqual({ hasMore: false, nextCursor: null });
      const bad = await stack.api("GET", `/v1/call?properties=${encodeURIComponent('["EU"]')}`);
      expect(bad.status).toBe(400);
      expect(bad.body.error.details[0]).toMatchObject({ field: "query.properties" });
      expect((await stack.api("GET", "/v1/call?startedAfter=yesterday")).status).toBe(400);
      const other = await stack.newOrganization("Other org for filters");
      expect((await other.api("GET", "/v1/call?agentId=agent-filter-a")).body.data).toEqual([]);
    });

    it("goes on after the last call it looked at when a filtered page stops short", async () => {
      const wanted: string[] = [];
      for (let i = 0; i < 4; i++) {
        wanted.push((await createCalls(stack.api, 1, { agentId: "agent-sparse" }))[0] as string);
        await createCalls(stack.api, 2, { agentId: "agent-dense" });
      }
      // Two calls looked at per request: pages come back short, and every cursor goes on.
      const seen: string[] = [];
      let after: PageKey | undefined;
      let requests = 0;
      do {
        const page = await listMatchingCalls(stack.orgId, { agentId: "agent-sparse" }, 10, after, 2);
        seen.push(...page.items.map((call) => call.id));
        after = page.nextKey as PageKey | undefined;
        requests++;
      } while (after && requests < 50);
      expect(seen).toEqual([...wanted].reverse());
      expect(requests).toBeGreaterThan(4);
    });

    it("answers 404 for unknown jobs", async () => {
      expect((await stack.api("GET", "/v1/metric/collection-jobs/nope")).status).toBe(404);
      expect((await stack.api("GET", "/v1/metric/collection-jobs/nope/metric-values")).status).toBe(404);
    });
  });

  describe("organization isolation", () => {
    it("hides every call, metric and job of another organization (404) and rejects its ids in jobs", async () => {
      const [callId] = await createCalls(stack.api, 1);
      const [metric] = await createMetrics(stack.api, [{ ...standardMetrics[0], slug: "dur-iso" }]);
      const job = await stack.api("POST", "/v1/metric/collection-jobs", {
        callIds: [callId],
        metrics: [{ id: metric!.id }],
      });
      const other = await stack.newOrganization("Other org");

      expect((await other.api("GET", `/v1/call/${callId}`)).status).toBe(404);
      expect((await other.api("GET", `/v1/call/${callId}/metrics`)).status).toBe(404);
      expect((await other.api("GET", `/v1/metric/definitions/${metric!.id}`)).status).toBe(404);
      expect((await other.api("GET", "/v1/metric/definitions/dur-iso")).status).toBe(404);
      expect((await other.api("PUT", `/v1/metric/definitions/${metric!.id}`, { name: "x" })).status).toBe(404);
      expect((await other.api("GET", `/v1/metric/collection-jobs/${job.body.data.id}`)).status).toBe(404);
      expect((await other.api("POST", `/v1/metric/collection-jobs/${job.body.data.id}/cancel`)).status).toBe(404);
      expect((await other.api("GET", `/v1/metric/collection-jobs/${job.body.data.id}/metric-values`)).status).toBe(404);
      expect((await other.api("GET", "/v1/call")).body.data).toEqual([]);
      expect((await other.api("GET", "/v1/metric/collection-jobs")).body.data).toEqual([]);
      const crossJob = await other.api("POST", "/v1/metric/collection-jobs", {
        callIds: [callId],
        metrics: [{ id: metric!.id }],
      });
      expect(crossJob.status).toBe(400);
      // The same slug is free in another organization.
      expect(
        (await other.api("POST", "/v1/metric/definitions", { ...standardMetrics[0], slug: "dur-iso" })).status,
      ).toBe(201);
    });
  });

  it("answers 404 JSON for unknown routes", async () => {
    const response = await stack.api("GET", "/v1/nothing-here");
    expect(response.status).toBe(404);
    expect(response.body.error.code).toBe("not_found");
  });
});
