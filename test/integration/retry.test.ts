/**
 * Retry is idempotent: concurrent retries of one job start one retry job, and a retry may
 * start again only once the previous one has finished.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCalls, createMetrics, llmMetric } from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitForJobEnd } from "../support/stack.ts";

describe("retrying a job's failed items", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(() => stack?.stop());

  async function retryJobsOf(jobId: string): Promise<{ id: string }[]> {
    const { body } = await stack.api("GET", "/v1/metric/collection-jobs?limit=50");
    return body.data.filter((job: { metadata?: { retryOf?: string } }) => job.metadata?.retryOf === jobId);
  }

  it("starts one retry job for retries sent at once, and a new one only after it finished", async () => {
    const callIds = await createCalls(stack.api, 3);
    const [metric] = await createMetrics(stack.api, [
      llmMetric("retry-sorry", "NUMERIC", 'How often is "sorry" said?'),
    ]);
    // Every answer is invalid: each item ends in ERROR, so the job has something to retry.
    stack.anthropic.configure({ fault: () => "malformed_always" });
    const created = await stack.api("POST", "/v1/metric/collection-jobs", { callIds, metrics: [{ id: metric!.id }] });
    const failed = await waitForJobEnd(stack.api, created.body.data.id);
    expect(failed).toMatchObject({ failedItems: 3 });

    // The retries stay running (their answers still fail slowly) while they are compared.
    stack.anthropic.configure({ fault: () => "malformed_always", latencyMs: 1_000 });
    const retries = await Promise.all(
      Array.from({ length: 4 }, () => stack.api("POST", `/v1/metric/collection-jobs/${failed.id}/retry`)),
    );
    for (const retry of retries) expect([200, 201]).toContain(retry.status);
    const ids = new Set(retries.map((retry) => retry.body.data.id));
    expect(ids.size).toBe(1);
    const [firstRetryId] = ids;
    expect(await retryJobsOf(failed.id)).toEqual([expect.objectContaining({ id: firstRetryId })]);

    stack.anthropic.configure({ fault: undefined, latencyMs: 0 });
    const firstRetry = await waitForJobEnd(stack.api, firstRetryId!);
    expect(firstRetry.metadata).toMatchObject({ retryOf: failed.id });

    // The first retry finished: retrying the original again starts a second retry job.
    const again = await stack.api("POST", `/v1/metric/collection-jobs/${failed.id}/retry`);
    expect(again.status).toBe(201);
    expect(again.body.data.id).not.toBe(firstRetryId);
    expect((await retryJobsOf(failed.id)).map((job) => job.id).sort()).toEqual(
      [firstRetryId, again.body.data.id].sort(),
    );
    await waitForJobEnd(stack.api, again.body.data.id);
  });
});
