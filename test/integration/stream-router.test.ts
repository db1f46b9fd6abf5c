/**
 * The stream router in the local runtime: jobs finalized and new calls matched to policies
 * through one stream consumer, and a failing handler loses nothing — neither its own
 * records (retried from the earliest failure) nor the other handler's.
 */
import type { DynamoDBStreamEvent } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { streamRoutes } from "../../functions/workers/stream-router.ts";
import { routeStreamRecords } from "../../shared/pipeline/stream-router.ts";
import { createCalls, createMetrics, jobValues, standardMetrics } from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitFor, waitForJobEnd } from "../support/stack.ts";

describe("the stream router", () => {
  let stack: TestStack;
  /** The policy matcher fails its first invocations, as during an outage of its table reads. */
  let matcherCalls = 0;
  const FAILING_CALLS = 2;
  beforeAll(async () => {
    const routes = streamRoutes.map((route) =>
      route.name === "policy-matcher"
        ? {
            ...route,
            handle: async (records: Parameters<typeof route.handle>[0]) => {
              matcherCalls++;
              if (matcherCalls <= FAILING_CALLS) throw new Error("policies unavailable");
              return route.handle(records);
            },
          }
        : route,
    );
    stack = await startTestStack({
      env: { POLICY_WINDOW_SECONDS: "1" },
      runtime: {
        scheduleIntervalMs: 300,
        handlerOverrides: {
          "stream-router": (event: DynamoDBStreamEvent) => routeStreamRecords(event.Records, routes),
        },
      },
    });
  });
  afterAll(() => stack?.stop());

  it("finalizes jobs and matches new calls, retrying a failed handler's records until they are handled", async () => {
    await createMetrics(stack.api, [{ ...standardMetrics[1], slug: "router-turns" }]);
    const policy = await stack.api("POST", "/v1/metric/policies", {
      name: "router agent",
      metrics: [{ id: "router-turns" }],
      conditions: [[{ conditionType: "AGENT", conditionOperator: "EQUALS", conditionValue: "agent-router" }]],
    });
    expect(policy.status).toBe(201);
    const [matched] = await createCalls(stack.api, 1, { agentId: "agent-router" });
    const others = await createCalls(stack.api, 2, { agentId: "agent-other" });
    const created = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds: others,
      metrics: [{ id: "router-turns" }],
    });
    expect(await waitForJobEnd(stack.api, created.body.data.id)).toMatchObject({
      status: "COMPLETED",
      completedItems: 2,
    });

    const policyJobs = await waitFor(
      async () => {
        const { body } = await stack.api("GET", "/v1/metric/collection-jobs?limit=50");
        const jobs = body.data.filter((job: any) => job.policyIds?.includes(policy.body.data.id));
        return jobs.length > 0 ? jobs : undefined;
      },
      { timeoutMs: 60_000, what: "the policy's job" },
    );
    const values = [];
    for (const job of policyJobs) {
      expect(await waitForJobEnd(stack.api, job.id)).toMatchObject({ status: "COMPLETED" });
      values.push(...(await jobValues(stack.api, job.id)));
    }
    // The call was matched once, after the failed attempts.
    expect(values.map((value) => value.callId)).toEqual([matched]);
    expect(matcherCalls).toBeGreaterThan(FAILING_CALLS);
    expect(stack.stats().streams["stream-router"]?.retries).toBeGreaterThanOrEqual(FAILING_CALLS);
  });
});
