/**
 * Batch mode on the local engines (DynamoDB Local, the SQS emulator, the fake Anthropic
 * server's Message Batches API): a job's LLM items go through provider batches and come back
 * with the values realtime judging gives, at half the price; progress shows items waiting on
 * the provider; errored and expired requests run again or end as ERROR; a submitter that dies
 * at any point neither loses items nor creates a second batch; canceling a job cancels its batches.
 */
import type { Context, SQSEvent } from "aws-lambda";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { sqsBatch } from "../../shared/consumers.ts";
import { estimateCostUsd } from "../../shared/llm/pricing.ts";
import { defaultLlmBatchDeps, submitBatchItems } from "../../shared/pipeline/llm-batches.ts";
import { defaultReconcilerDeps, reconcileJobs } from "../../shared/pipeline/reconcile.ts";
import { workItemSchema } from "../../shared/schemas/job.ts";
import { deleteSubmission, newSubmissionId, putSubmission } from "../../shared/store/llm-submissions.ts";
import { billedUsage, builtInMetric, createCalls, createMetrics, jobValues, llmMetric } from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitFor, waitForJobEnd } from "../support/stack.ts";

type SqsHandler = (event: SQSEvent, context: Context) => Promise<unknown>;

const metricsOf = (tag: string) => [
  llmMetric(`refund-asked-${tag}`, "BOOLEAN", 'Did the customer ask for a "refund"?'),
  llmMetric(`sorry-turns-${tag}`, "COUNT", 'In how many turns is "sorry" said?'),
  builtInMetric(`turns-${tag}`, { kind: "TURN_COUNT" }, "COUNT"),
];

const realSubmitter = sqsBatch(workItemSchema, (messages) => submitBatchItems(messages, defaultLlmBatchDeps()));
let submitter: SqsHandler = realSubmitter;

describe("batch mode on the local engines", { timeout: 180_000 }, () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({
      // Longer than the submitter's batching window (5 s), as in AWS; short enough for the crash test.
      queueOverrides: { batch: { visibilityTimeoutSeconds: 8, maxReceiveCount: 5 } },
      env: { LLM_BATCH_STALE_SECONDS: "2" },
      runtime: {
        scheduleIntervalMs: 300,
        handlerOverrides: { "batch-submitter": (event: SQSEvent, context: Context) => submitter(event, context) },
      },
    });
  });
  afterAll(() => stack?.stop());
  beforeEach(() => {
    submitter = realSubmitter;
    stack.anthropic.reset();
    stack.anthropic.configure({ fault: undefined, batchProcessingMs: 0, batchesExpire: false });
  });

  async function startJob(callIds: string[], metrics: { id: string }[], extra: Record<string, unknown> = {}) {
    const created = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds,
      metrics: metrics.map((m) => ({ id: m.id })),
      ...extra,
    });
    expect(created.status).toBe(201);
    return created.body.data;
  }

  const verdicts = async (jobId: string) =>
    (await jobValues(stack.api, jobId))
      .map(({ callId, slug, captureStatus, value, context }) =>
        JSON.stringify({ callId, slug, captureStatus, value, context }),
      )
      .sort();

  it("judges a batch-mode job through provider batches, with realtime's values at half the price", async () => {
    const callIds = await createCalls(stack.api, 3);
    const metrics = await createMetrics(stack.api, metricsOf("values"));
    const realtime = await waitForJobEnd(stack.api, (await startJob(callIds, metrics)).id);
    stack.anthropic.reset();

    stack.anthropic.configure({ batchProcessingMs: 1500 });
    const created = await startJob(callIds, metrics, { llmMode: "batch" });
    expect(created.llmMode).toBe("batch");
    const waiting = await waitFor(
      async () => {
        const { body } = await stack.api("GET", `/v1/metric/collection-jobs/${created.id}`);
        return body.data.itemsWaitingOnProvider > 0 ? body.data : undefined;
      },
      { what: "items waiting on the provider" },
    );
    expect(waiting.itemsWaitingOnProvider).toBeLessThanOrEqual(6);
    const job = await waitForJobEnd(stack.api, created.id);
    expect(job).toMatchObject({ status: "COMPLETED", totalItems: 9, completedItems: 9, failedItems: 0 });
    expect(job.itemsWaitingOnProvider).toBe(0);

    const served = stack.anthropic.requests();
    expect(served).toHaveLength(6);
    expect(served.every((r) => r.batchId !== undefined)).toBe(true);
    expect(await verdicts(job.id)).toEqual(await verdicts(realtime.id));
    // Every billed token at the batch price: half of what the same usage costs in realtime.
    const realtimePrice = estimateCostUsd("claude-sonnet-5-5", job.usage) ?? 0;
    expect(job.estimatedCostUsd).toBeCloseTo(realtimePrice / 2, 5);
  });

  it("shows no items waiting on the provider once the job has ended, before the collector closes its batch", async () => {
    const callIds = await createCalls(stack.api, 1);
    const metrics = await createMetrics(stack.api, metricsOf("ended"));
    const job = await waitForJobEnd(stack.api, (await startJob(callIds, metrics, { llmMode: "batch" })).id);
    expect(job.status).toBe("COMPLETED");
    // The collector records a batch's results (ending the job) before it closes the batch.
    const [callId] = callIds;
    const unclosed = {
      orgId: stack.orgId,
      jobId: job.id,
      id: newSubmissionId(),
      status: "SUBMITTED" as const,
      units: [{ callId: callId!, metrics: [{ id: metrics[0]!.id, version: 1 }] }],
      itemCount: 1,
      createdAt: new Date().toISOString(),
    };
    await putSubmission(unclosed);
    try {
      const { body } = await stack.api("GET", `/v1/metric/collection-jobs/${job.id}`);
      expect(body.data).toMatchObject({ status: "COMPLETED", itemsWaitingOnProvider: 0 });
    } finally {
      await deleteSubmission(unclosed);
    }
  });

  it("runs errored requests again, and records ERROR with the reason once their attempts are spent", async () => {
    const callIds = await createCalls(stack.api, 2);
    const metrics = await createMetrics(stack.api, metricsOf("errored"));
    // Each item's first request errors; the second succeeds.
    stack.anthropic.configure({ fault: (r) => (r.attempt === 1 ? "server_error" : undefined) });
    const job = await waitForJobEnd(stack.api, (await startJob(callIds, metrics, { llmMode: "batch" })).id);
    expect(job).toMatchObject({ status: "COMPLETED", completedItems: 6, failedItems: 0 });
    expect(new Set(stack.anthropic.requests().map((r) => r.batchId)).size).toBeGreaterThanOrEqual(2);

    stack.anthropic.reset();
    stack.anthropic.configure({ fault: undefined, batchesExpire: true });
    const expired = await waitForJobEnd(stack.api, (await startJob(callIds, metrics, { llmMode: "batch" })).id);
    expect(expired).toMatchObject({ status: "COMPLETED", completedItems: 2, failedItems: 4 });
    const errors = (await jobValues(stack.api, expired.id)).filter((v) => v.captureStatus === "ERROR");
    expect(errors).toHaveLength(4);
    for (const value of errors) expect(value.errorMessage).toMatch(/Gave up after \d+ attempts: .*expired/);
  });

  it("bills invalid batch answers to the job and asks their items again", async () => {
    const callIds = await createCalls(stack.api, 2);
    const metrics = await createMetrics(stack.api, metricsOf("invalid").slice(0, 1));
    // Each item's first batch answer is malformed (billed, no corrective turn in a batch).
    stack.anthropic.configure({ fault: (r) => (r.attempt === 1 ? "malformed" : undefined) });
    const job = await waitForJobEnd(stack.api, (await startJob(callIds, metrics, { llmMode: "batch" })).id);
    expect(job).toMatchObject({ status: "COMPLETED", completedItems: 2, failedItems: 0 });
    const served = stack.anthropic.requests();
    expect(served).toHaveLength(4);
    expect(job.usage).toEqual(billedUsage(served));
    const batchPrice = estimateCostUsd("claude-sonnet-5-5", job.usage, "batch") ?? 0;
    expect(job.estimatedCostUsd).toBeCloseTo(batchPrice, 5);
  });

  it("never creates a second batch for items whose submitter died, before or after creating it", async () => {
    const callIds = await createCalls(stack.api, 2);
    const metrics = await createMetrics(stack.api, metricsOf("crash"));
    // The first invocation creates the batch, loses the answer and dies before acknowledging.
    let crashes = 1;
    submitter = sqsBatch(workItemSchema, async (messages) => {
      const deps = defaultLlmBatchDeps();
      const crashing = crashes-- > 0;
      const result = await submitBatchItems(messages, {
        ...deps,
        client: async () => {
          const client = await deps.client();
          if (!crashing) return client;
          const create: typeof client.messages.batches.create = (params, options) =>
            client.messages.batches.create(params, options).then(() => {
              throw new Error("connection reset");
            }) as never;
          return { messages: { ...client.messages, batches: { ...client.messages.batches, create } } } as never;
        },
      });
      if (crashing) throw new Error("the submitter died");
      return result;
    });
    const job = await waitForJobEnd(stack.api, (await startJob(callIds, metrics, { llmMode: "batch" })).id);
    expect(job).toMatchObject({ status: "COMPLETED", completedItems: 6, failedItems: 0 });
    // One batch: the redelivered items were the submission's already, and the collector adopted its batch.
    expect(stack.anthropic.batches()).toHaveLength(1);
    expect(stack.anthropic.requests()).toHaveLength(4);
  });

  it("leaves items waiting in a message batch to it when the reconciler finds the job stalled", async () => {
    const callIds = await createCalls(stack.api, 2);
    const metrics = await createMetrics(stack.api, metricsOf("stalled"));
    stack.anthropic.configure({ batchProcessingMs: 600_000 });
    const created = await startJob(callIds, metrics, { llmMode: "batch" });
    await waitFor(
      async () => {
        const { body } = await stack.api("GET", `/v1/metric/collection-jobs/${created.id}`);
        return body.data.itemsWaitingOnProvider === 4 && body.data.completedItems === 2 ? true : undefined;
      },
      { what: "the built-in items recorded and the LLM items in a batch" },
    );
    const resent: unknown[] = [];
    const report = await reconcileJobs({
      ...defaultReconcilerDeps(),
      // An hour later: the job made no progress since, as batch jobs often do.
      now: () => new Date(Date.now() + 3600_000),
      sendWork: async (items) => {
        resent.push(...items);
      },
      publishRepairs: () => {},
    });
    expect(report.repairs.find((r) => r.jobId === created.id)).toMatchObject({ repair: "resend", items: 0 });
    expect(resent).toEqual([]);
    await stack.api("POST", `/v1/metric/collection-jobs/${created.id}/cancel`);
  });

  it("cancels a canceled job's batches", async () => {
    const callIds = await createCalls(stack.api, 2);
    const metrics = await createMetrics(stack.api, metricsOf("cancel"));
    stack.anthropic.configure({ batchProcessingMs: 600_000 });
    const created = await startJob(callIds, metrics, { llmMode: "batch" });
    await waitFor(async () => (stack.anthropic.batches().length > 0 ? true : undefined), { what: "a batch" });
    const canceled = await stack.api("POST", `/v1/metric/collection-jobs/${created.id}/cancel`);
    expect(canceled.body.data.status).toBe("CANCELED");
    const batch = await waitFor(async () => stack.anthropic.batches().find((b) => b.processing_status === "ended"), {
      what: "the batch to end canceled",
    });
    expect(batch.request_counts.canceled).toBe(4);
    expect(stack.anthropic.requests()).toHaveLength(0);
  });
});
