import { AsyncLocalStorage } from "node:async_hooks";
import { GetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHandler } from "../../functions/workers/evaluator.ts";
import { sqs } from "../../shared/aws.ts";
import { defaultEvaluatorDeps } from "../../shared/pipeline/evaluate.ts";
import { type EvaluateItem, evaluateByCalculationType } from "../../shared/pipeline/evaluators.ts";
import { createCalls, createMetrics, jobValues, standardMetrics } from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitFor } from "../support/stack.ts";
import { streamRouterWith } from "../support/stream-routes.ts";

const ITEM_MS = 250;
/** Evaluations of the first test's job that may run before its cancel; the rest wait for it. */
const EVALUATIONS_BEFORE_CANCEL = 12;

/** Messages on the queue, visible or being processed: 0 once every batch has ended. */
async function messagesLeft(queueUrl: string): Promise<number> {
  const { Attributes } = await sqs().send(
    new GetQueueAttributesCommand({
      QueueUrl: queueUrl,
      AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    }),
  );
  return (
    Number(Attributes?.ApproximateNumberOfMessages ?? 0) +
    Number(Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0)
  );
}

describe("canceling a running job", () => {
  let stack: TestStack;
  /** Whether the evaluator batch running this code was handed over after the cancel answered. */
  const batchAfterCancel = new AsyncLocalStorage<boolean>();
  let cancelAnswered = false;
  let evaluationsBeforeCancel = 0;
  let announceCancel: () => void = () => {};
  const cancelArrived = new Promise<void>((resolve) => {
    announceCancel = resolve;
  });
  let evaluationsInBatchesAfterCancel = 0;
  /** Finalization waits on this gate; tests hold it to cancel between the last count and finalization. */
  let finalizerGate: Promise<void> = Promise.resolve();
  beforeAll(async () => {
    const slow: EvaluateItem = async (definition, call) => {
      if (batchAfterCancel.getStore()) evaluationsInBatchesAfterCancel++;
      // Past the first few, evaluations wait for the cancel: the job is still running when it comes.
      if (!cancelAnswered && ++evaluationsBeforeCancel > EVALUATIONS_BEFORE_CANCEL) await cancelArrived;
      await new Promise((resolve) => setTimeout(resolve, ITEM_MS));
      return evaluateByCalculationType(definition, call);
    };
    const evaluator = createHandler({ ...defaultEvaluatorDeps, evaluate: slow });
    stack = await startTestStack({
      runtime: {
        handlerOverrides: {
          evaluator: (event, context) => batchAfterCancel.run(cancelAnswered, () => evaluator(event, context)),
          "stream-router": streamRouterWith("finalizer", (finalize) => async (records) => {
            await finalizerGate;
            return finalize(records);
          }),
        },
      },
    });
  });
  afterAll(() => stack?.stop());

  it("stops the job: CANCELED, counters frozen, and nothing recorded after the cancel", async () => {
    const callIds = await createCalls(stack.api, 40);
    const metrics = await createMetrics(stack.api, standardMetrics);
    const created = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds,
      metrics: metrics.map((m) => ({ id: m.id })),
    });
    const jobId = created.body.data.id;
    await waitFor(
      async () => {
        const { body } = await stack.api("GET", `/v1/metric/collection-jobs/${jobId}`);
        return body.data.completedItems > 0 ? true : undefined;
      },
      { what: "first items to complete" },
    );

    const canceled = await stack.api("POST", `/v1/metric/collection-jobs/${jobId}/cancel`);
    cancelAnswered = true;
    announceCancel();
    expect(canceled.status).toBe(200);
    expect(canceled.body.data.status).toBe("CANCELED");
    expect(canceled.body.data.canceledAt).toBeTruthy();
    const atCancel = canceled.body.data;
    expect(atCancel.completedItems).toBeGreaterThan(0);
    expect(atCancel.completedItems).toBeLessThanOrEqual(EVALUATIONS_BEFORE_CANCEL);

    // Batches already running finish and the rest are skipped; none of their results may land.
    await waitFor(
      async () => {
        const left = (await messagesLeft(stack.queueUrls.dispatch)) + (await messagesLeft(stack.queueUrls.work));
        return left === 0 ? true : undefined;
      },
      { what: "the dispatch and work queues to drain" },
    );
    const { body } = await stack.api("GET", `/v1/metric/collection-jobs/${jobId}`);
    expect(body.data).toMatchObject({
      status: "CANCELED",
      completedItems: atCancel.completedItems,
      failedItems: atCancel.failedItems,
    });
    const values = await jobValues(stack.api, jobId);
    expect(values).toHaveLength(atCancel.completedItems + atCancel.failedItems);
    // A batch handed over after the cancel starts no evaluation.
    expect(evaluationsInBatchesAfterCancel).toBe(0);

    // Cancel is idempotent; a finished job cannot be canceled.
    const again = await stack.api("POST", `/v1/metric/collection-jobs/${jobId}/cancel`);
    expect(again.status).toBe(200);
    expect(again.body.data.status).toBe("CANCELED");
  });

  it("finishes a fully recorded job instead of canceling it when the cancel beats the finalizer", async () => {
    const callIds = await createCalls(stack.api, 2);
    const [metric] = await createMetrics(stack.api, [{ ...standardMetrics[0], slug: "duration-cancel-race" }]);
    let openGate = () => {};
    finalizerGate = new Promise((resolve) => {
      openGate = resolve;
    });
    try {
      const created = await stack.api("POST", "/v1/metric/collection-jobs", { callIds, metrics: [{ id: metric!.id }] });
      const jobId = created.body.data.id;
      await waitFor(
        async () => {
          const { body } = await stack.api("GET", `/v1/metric/collection-jobs/${jobId}`);
          return body.data.completedItems + body.data.failedItems === 2 ? body.data : undefined;
        },
        { what: "every item to be recorded" },
      );
      const { body: recorded } = await stack.api("GET", `/v1/metric/collection-jobs/${jobId}`);
      expect(recorded.data.status).toBe("PROCESSING");

      const cancel = await stack.api("POST", `/v1/metric/collection-jobs/${jobId}/cancel`);
      expect(cancel.status).toBe(409);
      expect(cancel.body.error.message).toContain("already COMPLETED");
      const { body } = await stack.api("GET", `/v1/metric/collection-jobs/${jobId}`);
      expect(body.data).toMatchObject({ status: "COMPLETED", completedItems: 2, failedItems: 0 });
      expect(body.data.completedAt).toBeTruthy();
      expect(body.data.canceledAt).toBeUndefined();
    } finally {
      openGate();
      finalizerGate = Promise.resolve();
    }
  });

  it("answers 409 when canceling a finished job and 404 for an unknown one", async () => {
    const [callId] = await createCalls(stack.api, 1);
    const [metric] = await createMetrics(stack.api, [{ ...standardMetrics[0], slug: "duration-cancel" }]);
    const created = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds: [callId],
      metrics: [{ id: metric!.id }],
    });
    const jobId = created.body.data.id;
    await waitFor(
      async () => {
        const { body } = await stack.api("GET", `/v1/metric/collection-jobs/${jobId}`);
        return body.data.status === "COMPLETED" ? true : undefined;
      },
      { what: "job to complete" },
    );
    const late = await stack.api("POST", `/v1/metric/collection-jobs/${jobId}/cancel`);
    expect(late.status).toBe(409);
    expect(late.body.error.message).toContain("already COMPLETED");
    const unknown = await stack.api("POST", "/v1/metric/collection-jobs/does-not-exist/cancel");
    expect(unknown.status).toBe(404);
  });
});
