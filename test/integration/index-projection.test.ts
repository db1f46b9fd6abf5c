/**
 * The index holds keys and a few small attributes, not whole items: a job's counter updates
 * and its values cost the index one unit per entry at most, and every list still answers
 * whole items (read from the table).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRequestMeter } from "../../bench/request-meter.ts";
import { dynamo } from "../../shared/aws.ts";
import { MAX_JOB_METADATA_BYTES } from "../../shared/schemas/job.ts";
import { listRunningJobs } from "../../shared/store/jobs.ts";
import { createCalls, createMetrics, llmMetric, standardMetrics } from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitFor, waitForJobEnd, waitForRollups } from "../support/stack.ts";

describe("the secondary index's projection", () => {
  let stack: TestStack;
  const meter = createRequestMeter();
  beforeAll(async () => {
    stack = await startTestStack();
    meter.attach(dynamo());
  });
  afterAll(() => stack?.stop());

  it("is not rewritten at a job's full size when its counters move, and lists still answer whole items", async () => {
    const callIds = await createCalls(stack.api, 3);
    const metrics = await createMetrics(stack.api, [
      { ...standardMetrics[1], slug: "projection-turns" },
      llmMetric("projection-refund", "BOOLEAN", "Did the customer ask for a refund?"),
    ]);
    // About 8 KB of metadata: the job item alone is 8 units to write in full.
    const metadata = Object.fromEntries(
      Array.from({ length: 8 }, (_, i) => [`note${i}`, "m".repeat(MAX_JOB_METADATA_BYTES / 8 - 32)]),
    );
    meter.reset();
    const created = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds,
      metrics: metrics.map((m) => ({ id: m.id })),
      metadata,
    });
    expect(created.status).toBe(201);
    const job = await waitForJobEnd(stack.api, created.body.data.id);
    expect(job).toMatchObject({ status: "COMPLETED", completedItems: 6, failedItems: 0 });

    // Counted once everything the job's end sets off is done (its marker dropped, its rollup
    // deltas applied), so the count does not depend on how fast this machine is.
    await waitFor(async () => ((await listRunningJobs("9999")).some((m) => m.jobId === job.id) ? undefined : true), {
      what: "the job's running marker to be dropped",
    });
    await waitForRollups();
    // Single units: each value's entry, the marker's, the rollup deltas' and the status
    // changes. One write of the job item to the index would take 8 alone, and its counters
    // moved at least twice.
    const { indexWriteUnits, writeUnits } = meter.counts();
    expect(writeUnits).toBeGreaterThan(0);
    expect(indexWriteUnits).toBeGreaterThan(0);
    expect(indexWriteUnits).toBeLessThanOrEqual(job.totalItems + 5);
    expect(indexWriteUnits).toBeLessThan(job.totalItems + 2 * (MAX_JOB_METADATA_BYTES / 1024));

    const listed = await stack.api("GET", "/v1/metric/collection-jobs?limit=5&status=COMPLETED");
    expect(listed.body.data[0]).toMatchObject({ id: job.id, completedItems: 6, metadata });
    const calls = await stack.api("GET", "/v1/call?limit=2");
    expect(calls.body.data).toHaveLength(2);
    expect(calls.body.data[0]).toMatchObject({ agentId: "agent-support", segmentCount: 4 });
    const values = await stack.api("GET", `/v1/call/${callIds[0]}/metrics?status=success`);
    expect(values.body.data.flatMap((group: { values: unknown[] }) => group.values ?? [group])).not.toHaveLength(0);
    const definitions = await stack.api("GET", "/v1/metric/definitions?limit=10");
    expect(definitions.body.data.map((d: { llmPrompt?: string }) => d.llmPrompt)).toContain(
      "Did the customer ask for a refund?",
    );
  });
});
