/**
 * Billed attempts on DynamoDB Local: the usage of answers no value carries is added to the
 * job once per attempt, however often it is reported, in transactions of any size; a job that
 * does not exist (or another organization's job of the same id) is left alone.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keys } from "../../shared/keys.ts";
import { addBilledAttempts, type BilledAttempt } from "../../shared/store/billed-attempts.ts";
import { table } from "../../shared/store/table.ts";
import { startTestStack, type TestStack } from "../support/stack.ts";

const attempt = (attemptId: string, tokens = 10): BilledAttempt => ({
  attemptId,
  usage: {
    inputTokens: tokens,
    outputTokens: 2,
    cacheCreationInputTokens: 0,
    cacheReadInputTokens: 1,
    thinkingTokens: 0,
  },
  estimatedCostUsd: 0.000123,
});

describe("billed attempts on a job", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(() => stack?.stop());

  const putJob = (orgId: string, jobId: string) =>
    table.put({ Item: { ...keys.job(orgId, jobId), entity: "Job", status: "CANCELED" } });
  const job = (orgId: string, jobId: string) => table.get(keys.job(orgId, jobId), { ConsistentRead: true });

  it("adds each attempt once, reported twice, across transactions, whatever the job's status", async () => {
    await putJob("org-billed", "job-1");
    await putJob("org-other", "job-1");
    const first = Array.from({ length: 60 }, (_, i) => attempt(`msg-${i}#1`));
    await addBilledAttempts("org-billed", "job-1", first);
    // Reported again (a retried write, results read again), beside new attempts and a long id.
    const longId = `batch:${"x".repeat(400)}`;
    await addBilledAttempts("org-billed", "job-1", [...first.slice(40), attempt("msg-60#1"), attempt(longId, 5)]);
    await addBilledAttempts("org-billed", "job-1", [attempt(longId, 5), attempt("msg-0#2")]);

    const billed = await job("org-billed", "job-1");
    expect(billed).toMatchObject({
      usageInputTokens: 62 * 10 + 5,
      usageOutputTokens: 63 * 2,
      usageCacheReadInputTokens: 63,
      estimatedCostUsd: 0.007749,
      status: "CANCELED",
    });
    expect(await job("org-other", "job-1")).not.toHaveProperty("usageInputTokens");
  });

  it("leaves a job that does not exist alone", async () => {
    await addBilledAttempts("org-billed", "no-such-job", [attempt("msg-x#1")]);
    expect(await job("org-billed", "no-such-job")).toBeUndefined();
  });
});
