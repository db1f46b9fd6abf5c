/** Metric policies on the local engines: CRUD, matching new calls, batching bursts into few jobs. */
import { randomUUID } from "node:crypto";
import { QueryCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dynamo } from "../../shared/aws.ts";
import { config } from "../../shared/config.ts";
import { keys } from "../../shared/keys.ts";
import { parsePageEntry } from "../../shared/pipeline/create-job.ts";
import { addToPolicyBatch, flushDuePolicyBatches } from "../../shared/policies/batches.ts";
import { getJobItem, getJobPage } from "../../shared/store/jobs.ts";
import { createCalls, createMetrics, jobValues, standardMetrics } from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitFor, waitForJobEnd } from "../support/stack.ts";
import { streamRouterWith } from "../support/stream-routes.ts";

/** Far-future windows the scheduled flusher leaves alone: the tests flush them themselves. */
const FAR = Date.parse("2090-01-01T00:00:00Z");
const MAX_JOB_ITEMS = 40;
/** Small batch items, so that filling several takes few writes. */
const CALLS_PER_BATCH_ITEM = 50;

describe("metric policies", () => {
  let stack: TestStack;
  /** Calls whose new-call stream record the policy matcher has handled. */
  const matched = new Set<string>();
  beforeAll(async () => {
    stack = await startTestStack({
      env: {
        POLICY_WINDOW_SECONDS: "1",
        MAX_JOB_ITEMS: String(MAX_JOB_ITEMS),
        POLICY_BATCH_ITEM_CALLS: String(CALLS_PER_BATCH_ITEM),
      },
      runtime: {
        scheduleIntervalMs: 300,
        handlerOverrides: {
          "stream-router": streamRouterWith("policy-matcher", (match) => async (records) => {
            const response = await match(records);
            if (response.batchItemFailures.length === 0) {
              for (const record of records) matched.add(String(record.dynamodb?.NewImage?.id?.S));
            }
            return response;
          }),
        },
      },
    });
  });
  afterAll(() => stack?.stop());

  /** Waits until the matcher has handled these calls and every batch due by then is flushed. */
  async function matchedAndFlushed(callIds: (string | undefined)[]) {
    await waitFor(async () => (callIds.every((id) => matched.has(String(id))) ? true : undefined), {
      what: "the policy matcher to handle the calls",
    });
    const cutoff = new Date(Date.now() + 86_400_000).toISOString();
    await waitFor(
      async () => {
        const { Items = [] } = await dynamo().send(
          new QueryCommand({
            TableName: config().tableName,
            IndexName: "gsi1",
            KeyConditionExpression: "gsi1pk = :open AND gsi1sk < :cutoff",
            ExpressionAttributeValues: { ":open": keys.openPolicyBatches, ":cutoff": cutoff },
          }),
        );
        return Items.length === 0 ? true : undefined;
      },
      { what: "every due policy batch to be flushed" },
    );
  }

  /** Each call of the policy's jobs, once per job that holds it. */
  async function callsInJobsOf(policyId: string): Promise<{ jobs: string[]; calls: string[] }> {
    const { body } = await stack.api("GET", "/v1/metric/collection-jobs?limit=50");
    const jobs: string[] = body.data.filter((job: any) => job.policyIds.includes(policyId)).map((job: any) => job.id);
    const calls: string[] = [];
    for (const jobId of jobs) {
      const item = await getJobItem(stack.orgId, jobId, true);
      for (let page = 0; page < Number(item?.pageCount ?? 0); page++) {
        const entries = (await getJobPage(stack.orgId, jobId, page)) ?? [];
        calls.push(...entries.map((entry) => parsePageEntry(entry).callId));
      }
    }
    return { jobs, calls: calls.sort() };
  }

  /** A policy no new call matches (the tests hand it calls themselves), on `metricCount` metrics. */
  async function unmatchedPolicy(slug: string, metricCount = 1) {
    const metrics = await createMetrics(
      stack.api,
      standardMetrics.slice(0, metricCount).map((metric, index) => ({ ...metric, slug: `${slug}-${index}` })),
    );
    const { body } = await stack.api("POST", "/v1/metric/policies", {
      name: slug,
      metrics: metrics.map((metric) => ({ id: metric.id })),
      conditions: [[{ conditionType: "AGENT", conditionOperator: "EQUALS", conditionValue: `nobody-${slug}` }]],
    });
    return body.data.id as string;
  }

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
      (
        await stack.api("POST", "/v1/metric/policies", {
          name,
          status,
          metrics: [{ id: "policy-turns" }],
          conditions,
          // Its jobs are judged in this mode (the built-in metric is never grouped).
          judgeMode: "grouped",
        })
      ).body.data.id as string;
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
        expect(finished).toMatchObject({ status: "COMPLETED", triggeredBy: "METRIC_POLICY", judgeMode: "grouped" });
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

    await matchedAndFlushed([c1, c2, c3, c4]);
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
    // Every window of these calls has been flushed: each policy's jobs are all there.
    await matchedAndFlushed(Object.values(calls));

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

  it("spills a full window batch into further shards, each item bounded by construction", async () => {
    // Far in the future, so the flusher leaves these (fake) calls alone; ids of the longest kind.
    const now = new Date("2100-01-01T00:00:10Z");
    const callIds = Array.from({ length: 2 * CALLS_PER_BATCH_ITEM + 20 }, () => randomUUID().padEnd(256, "x"));
    // Two matcher invocations at a time: both may aim at the same shard, one of them moves on.
    for (let i = 0; i < callIds.length; i += 60) {
      await Promise.all([
        addToPolicyBatch(stack.orgId, "spill-policy", callIds.slice(i, i + 30), now),
        addToPolicyBatch(stack.orgId, "spill-policy", callIds.slice(i + 30, i + 60), now),
      ]);
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
    // Full at a bounded count, not at DynamoDB's size limit (these ids would fit one item).
    expect(Items.length).toBeGreaterThanOrEqual(3);
    for (const item of Items) expect((item.callIds as Set<string>).size).toBeLessThanOrEqual(CALLS_PER_BATCH_ITEM);
    const stored = Items.flatMap((item) => [...(item.callIds as Set<string>)]);
    expect(stored).toHaveLength(callIds.length);
    expect(new Set(stored).size).toBe(callIds.length);
  });

  it("never drops a call added while its window is being flushed: it goes to the next window", async () => {
    const policyId = await unmatchedPolicy("policy-flush-race");
    const [early, late] = await createCalls(stack.api, 2);
    const window = new Date(FAR);
    await addToPolicyBatch(stack.orgId, policyId, [early!], window);
    // The late call arrives while the flusher is creating the window's job.
    let interleaved = false;
    const client = dynamo();
    client.middlewareStack.add(
      (next) => async (args) => {
        const input = JSON.stringify(args.input);
        if (!interleaved && input.includes('"Job"') && input.includes(policyId)) {
          interleaved = true;
          await addToPolicyBatch(stack.orgId, policyId, [late!], window);
        }
        return next(args);
      },
      { step: "initialize", name: "addDuringFlush" },
    );
    try {
      await flushDuePolicyBatches(new Date(FAR + 1_500));
    } finally {
      client.middlewareStack.remove("addDuringFlush");
    }
    expect(interleaved).toBe(true);
    await flushDuePolicyBatches(new Date(FAR + 5_000));
    const { jobs, calls } = await callsInJobsOf(policyId);
    expect(calls).toEqual([early, late].sort());
    expect(jobs).toHaveLength(2);
  });

  it("puts a call in one job only, even when its stream record is replayed after the window closed", async () => {
    const policyId = await unmatchedPolicy("policy-replay");
    const [call] = await createCalls(stack.api, 1);
    await addToPolicyBatch(stack.orgId, policyId, [call!], new Date(FAR + 10_000));
    await flushDuePolicyBatches(new Date(FAR + 11_500));
    // The same record again, two windows later (a retried stream batch).
    await addToPolicyBatch(stack.orgId, policyId, [call!], new Date(FAR + 13_000));
    await flushDuePolicyBatches(new Date(FAR + 15_000));
    const { jobs, calls } = await callsInJobsOf(policyId);
    expect(calls).toEqual([call]);
    expect(jobs).toHaveLength(1);
  });

  it("splits a batch too large for one job into several jobs instead of dropping it", async () => {
    const metricCount = 3;
    const policyId = await unmatchedPolicy("policy-oversized", metricCount);
    const callIds = await createCalls(stack.api, 15);
    expect(callIds.length * metricCount).toBeGreaterThan(MAX_JOB_ITEMS);
    await addToPolicyBatch(stack.orgId, policyId, callIds, new Date(FAR + 20_000));
    await flushDuePolicyBatches(new Date(FAR + 21_500));
    const { jobs, calls } = await callsInJobsOf(policyId);
    expect(calls).toEqual([...callIds].sort());
    expect(jobs.length).toBeGreaterThan(1);
    for (const jobId of jobs) {
      const job = await waitForJobEnd(stack.api, jobId);
      expect(job).toMatchObject({ status: "COMPLETED", failedItems: 0 });
      expect(job.totalItems).toBeLessThanOrEqual(MAX_JOB_ITEMS);
    }
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
