/** Metric policies on the local engines: CRUD, matching new calls, batching bursts into few jobs. */
import { randomUUID } from "node:crypto";
import { QueryCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dynamo } from "../../shared/aws.ts";
import { config } from "../../shared/config.ts";
import { keys } from "../../shared/keys.ts";
import { addToPolicyBatch } from "../../shared/policies/batches.ts";
import { createCalls, createMetrics, jobValues, standardMetrics } from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitFor, waitForJobEnd } from "../support/stack.ts";

describe("metric policies", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({
      env: { POLICY_WINDOW_SECONDS: "1" },
      runtime: { scheduleIntervalMs: 300 },
    });
  });
  afterAll(() => stack?.stop());

  /** Every (job, call) the policy produced, once its jobs have run. */
  async function callsRunFor(policyId: string, expectedCalls: number) {
    return waitFor(
      async () => {
        const { body } = await stack.api("GET", "/v1/metric/collection-jobs?limit=50");
        const jobs = body.data.filter(
          (job: any) => job.triggeredBy === "METRIC_POLICY" && job.policyIds.includes(policyId),
        );
        const calls = jobs.reduce((sum: number, job: any) => sum + job.callCount, 0);
        return calls >= expectedCalls ? jobs : undefined;
      },
      { timeoutMs: 30_000, what: `jobs of policy ${policyId}` },
    );
  }

  it("creates, reads, lists, updates and soft-deletes policies, with clear 400s", async () => {
    const [metric] = await createMetrics(stack.api, [{ ...standardMetrics[0], slug: "policy-crud" }]);
    const created = await stack.api("POST", "/v1/metric/policies", {
      name: "Support agent",
      metrics: [{ id: "policy-crud" }],
      conditions: [[{ conditionType: "AGENT", conditionOperator: "EQUALS", conditionValue: "agent-crud" }]],
    });
    expect(created.status).toBe(201);
    expect(created.body.data).toMatchObject({ status: "ACTIVE", metrics: [{ id: metric!.id }] });
    const id = created.body.data.id;
    expect((await stack.api("GET", `/v1/metric/policies/${id}`)).body.data.name).toBe("Support agent");
    const updated = await stack.api("PUT", `/v1/metric/policies/${id}`, { status: "INACTIVE" });
    expect(updated.body.data).toMatchObject({ status: "INACTIVE", name: "Support agent" });
    const listed = await stack.api("GET", "/v1/metric/policies");
    expect(listed.body.data.map((p: any) => p.id)).toContain(id);

    expect((await stack.api("DELETE", `/v1/metric/policies/${id}`)).status).toBe(200);
    expect((await stack.api("GET", `/v1/metric/policies/${id}`)).status).toBe(404);
    expect((await stack.api("DELETE", `/v1/metric/policies/${id}`)).status).toBe(404);
    expect((await stack.api("GET", "/v1/metric/policies")).body.data.map((p: any) => p.id)).not.toContain(id);

    const unknownMetric = await stack.api("POST", "/v1/metric/policies", { name: "x", metrics: [{ id: "nope" }] });
    expect(unknownMetric.status).toBe(400);
    expect(unknownMetric.body.error.message).toMatch(/Unknown metric ids: nope/);
    const badCondition = await stack.api("POST", "/v1/metric/policies", {
      name: "x",
      metrics: [{ id: "policy-crud" }],
      conditions: [[{ conditionType: "CALL_PROPERTY", conditionOperator: "GREATER_THAN", conditionValue: "high" }]],
    });
    expect(badCondition.status).toBe(400);
    expect(badCondition.body.error.details.map((d: any) => d.field)).toEqual([
      "body.conditions.0.0.conditionKey",
      "body.conditions.0.0.conditionValue",
    ]);
    const other = await stack.newOrganization("Other");
    expect((await other.api("GET", `/v1/metric/policies/${created.body.data.id}`)).status).toBe(404);
  });

  it("runs each ACTIVE policy's metrics on the new calls that match it, and records the policy", async () => {
    await createMetrics(stack.api, [{ ...standardMetrics[1], slug: "policy-turns" }]);
    const policy = async (name: string, conditions: unknown[], status = "ACTIVE") =>
      (await stack.api("POST", "/v1/metric/policies", { name, status, metrics: [{ id: "policy-turns" }], conditions }))
        .body.data.id as string;
    const byAgent = await policy("agent x", [
      [{ conditionType: "AGENT", conditionOperator: "EQUALS", conditionValue: "agent-x" }],
    ]);
    const euHighTierOrVip = await policy("eu high tier or vip", [
      [
        { conditionType: "CALL_PROPERTY", conditionKey: "region", conditionOperator: "EQUALS", conditionValue: "EU" },
        {
          conditionType: "CALL_PROPERTY",
          conditionKey: "tier",
          conditionOperator: "GREATER_THAN",
          conditionValue: "2",
        },
      ],
      [{ conditionType: "AGENT", conditionOperator: "STARTS_WITH", conditionValue: "vip-" }],
    ]);
    const inactive = await policy("inactive", [], "INACTIVE");

    const [c1] = await createCalls(stack.api, 1, { agentId: "agent-x", properties: { region: "US" } });
    const [c2] = await createCalls(stack.api, 1, { agentId: "agent-y", properties: { region: "EU", tier: "3" } });
    const [c3] = await createCalls(stack.api, 1, { agentId: "vip-1", properties: {} });
    const [c4] = await createCalls(stack.api, 1, { agentId: "agent-y", properties: { region: "EU", tier: "1" } });

    const agentJobs = await callsRunFor(byAgent, 1);
    const groupJobs = await callsRunFor(euHighTierOrVip, 2);
    const callsOf = async (jobs: any[]) => {
      const values = [];
      for (const job of jobs) {
        const finished = await waitForJobEnd(stack.api, job.id);
        expect(finished).toMatchObject({ status: "COMPLETED", triggeredBy: "METRIC_POLICY" });
        values.push(...(await jobValues(stack.api, job.id)));
      }
      return values;
    };
    const agentValues = await callsOf(agentJobs);
    expect(agentValues.map((v) => v.callId)).toEqual([c1]);
    expect(agentValues[0].policyIds).toEqual([byAgent]);
    const groupValues = await callsOf(groupJobs);
    expect(groupValues.map((v) => v.callId).sort()).toEqual([c2, c3].sort());
    expect(groupValues.map((v) => v.callId)).not.toContain(c4);

    await new Promise((resolve) => setTimeout(resolve, 1500));
    const { body } = await stack.api("GET", "/v1/metric/collection-jobs?limit=50");
    expect(body.data.filter((job: any) => job.policyIds.includes(inactive))).toEqual([]);
  });

  it("evaluates every operator (each ANDed with a scoping condition) on agents and properties", async () => {
    await createMetrics(stack.api, [{ ...standardMetrics[1], slug: "policy-ops" }]);
    const scope = {
      conditionType: "CALL_PROPERTY",
      conditionKey: "suite",
      conditionOperator: "EQUALS",
      conditionValue: "ops",
    };
    const cases: [string, object, string[]][] = [
      ["EQUALS", { conditionType: "CALL_PROPERTY", conditionKey: "plan", conditionValue: "pro" }, ["a"]],
      // A missing property is "not equal".
      ["NOT_EQUALS", { conditionType: "CALL_PROPERTY", conditionKey: "plan", conditionValue: "free" }, ["a", "c"]],
      ["CONTAINS", { conditionType: "CALL_PROPERTY", conditionKey: "note", conditionValue: "refund" }, ["a"]],
      ["STARTS_WITH", { conditionType: "AGENT", conditionValue: "op-" }, ["a", "b"]],
      // Numeric comparisons: "abc" and a missing score never match.
      ["GREATER_THAN", { conditionType: "CALL_PROPERTY", conditionKey: "score", conditionValue: "5" }, ["b"]],
      ["LESS_THAN", { conditionType: "CALL_PROPERTY", conditionKey: "score", conditionValue: "10" }, ["a"]],
      [
        "GREATER_THAN_OR_EQUALS",
        { conditionType: "CALL_PROPERTY", conditionKey: "score", conditionValue: "5" },
        ["a", "b"],
      ],
      ["LESS_THAN_OR_EQUALS", { conditionType: "CALL_PROPERTY", conditionKey: "score", conditionValue: "5" }, ["a"]],
    ];
    const policyIds: string[] = [];
    for (const [operator, condition] of cases) {
      const { body, status } = await stack.api("POST", "/v1/metric/policies", {
        name: `op ${operator}`,
        metrics: [{ id: "policy-ops" }],
        conditions: [[scope, { ...condition, conditionOperator: operator }]],
      });
      expect(status, JSON.stringify(body)).toBe(201);
      policyIds.push(body.data.id);
    }
    const calls: Record<string, string | undefined> = {};
    [calls.a] = await createCalls(stack.api, 1, {
      agentId: "op-alpha",
      properties: { suite: "ops", plan: "pro", score: "5", note: "wants-a-refund-now" },
    });
    [calls.b] = await createCalls(stack.api, 1, {
      agentId: "op-beta",
      properties: { suite: "ops", plan: "free", score: "10" },
    });
    [calls.c] = await createCalls(stack.api, 1, { agentId: "zz-gamma", properties: { suite: "ops", score: "abc" } });
    // Matches nothing: the scoping condition of every group fails.
    [calls.d] = await createCalls(stack.api, 1, { agentId: "op-delta", properties: { plan: "pro", score: "7" } });
    // Every window (1 s) has ended and been flushed (every 300 ms): each policy's jobs are all there.
    await new Promise((resolve) => setTimeout(resolve, 2500));

    for (const [index, [operator, , expected]] of cases.entries()) {
      const policyId = policyIds[index] as string;
      const jobs = await callsRunFor(policyId, expected.length);
      const ran: string[] = [];
      for (const job of jobs) {
        await waitForJobEnd(stack.api, job.id);
        ran.push(...(await jobValues(stack.api, job.id)).map((v) => v.callId));
      }
      const names = Object.entries(calls)
        .filter(([, id]) => id !== undefined && ran.includes(id))
        .map(([name]) => name);
      expect(names, operator).toEqual(expected);
    }
    // Out of the way of the next tests' calls.
    for (const id of policyIds) await stack.api("PUT", `/v1/metric/policies/${id}`, { status: "INACTIVE" });
  });

  it("spills a full window batch into further shards instead of failing", async () => {
    // Far in the future, so the flusher leaves these (fake) calls alone.
    const now = new Date("2100-01-01T00:00:10Z");
    const callIds = Array.from({ length: 12_000 }, () => randomUUID());
    for (let i = 0; i < callIds.length; i += 1_000) {
      await addToPolicyBatch(stack.orgId, "spill-policy", callIds.slice(i, i + 1_000), now);
    }
    const { Items = [] } = await dynamo().send(
      new QueryCommand({
        TableName: config().tableName,
        KeyConditionExpression: "pk = :pk AND begins_with(sk, :batch)",
        ExpressionAttributeValues: {
          ":pk": keys.policyBatch(stack.orgId, "spill-policy", "").pk,
          ":batch": "BATCH#2100",
        },
      }),
    );
    expect(Items.length).toBeGreaterThan(1);
    const stored = Items.flatMap((item) => [...(item.callIds as Set<string>)]);
    expect(stored).toHaveLength(callIds.length);
    expect(new Set(stored).size).toBe(callIds.length);
  });

  it("batches a burst of matching calls into a few jobs, each call exactly once", async () => {
    await createMetrics(stack.api, [{ ...standardMetrics[0], slug: "policy-burst" }]);
    const { body } = await stack.api("POST", "/v1/metric/policies", {
      name: "burst",
      metrics: [{ id: "policy-burst" }],
      conditions: [[{ conditionType: "AGENT", conditionOperator: "EQUALS", conditionValue: "agent-burst" }]],
    });
    const started = Date.now();
    const callIds = await createCalls(stack.api, 30, { agentId: "agent-burst" });
    const windows = Math.ceil((Date.now() - started) / 1000) + 1;
    const jobs = await callsRunFor(body.data.id, 30);
    // One job per 1 s window the burst spanned (however slow a loaded machine made it), not per call.
    expect(jobs.length).toBeLessThanOrEqual(Math.min(windows, 29));
    const values = [];
    for (const job of jobs) {
      await waitForJobEnd(stack.api, job.id);
      values.push(...(await jobValues(stack.api, job.id)));
    }
    expect(values.map((v) => v.callId).sort()).toEqual([...callIds].sort());
  });
});
