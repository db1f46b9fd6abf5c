import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHandler } from "../../functions/workers/evaluator.ts";
import { defaultEvaluatorDeps } from "../../shared/pipeline/evaluate.ts";
import { type EvaluateItem, evaluateByCalculationType } from "../../shared/pipeline/evaluators.ts";
import { wiring } from "../../shared/wiring.ts";
import { createCalls, createMetrics, jobValues, standardMetrics } from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitFor } from "../support/stack.ts";

const ITEM_MS = 250;
/** A batch running when the job is canceled finishes its items (it read the status at its start). */
const BATCH_MS = (wiring.queueConsumers.find((consumer) => consumer.id === "evaluator")?.batchSize ?? 0) * ITEM_MS;

describe("canceling a running job", () => {
  let stack: TestStack;
  const evaluationStarts: number[] = [];
  beforeAll(async () => {
    const slow: EvaluateItem = async (definition, call) => {
      evaluationStarts.push(Date.now());
      await new Promise((resolve) => setTimeout(resolve, ITEM_MS));
      return evaluateByCalculationType(definition, call);
    };
    stack = await startTestStack({
      runtime: { handlerOverrides: { evaluator: createHandler({ ...defaultEvaluatorDeps, evaluate: slow }) } },
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
    const canceledAt = Date.now();
    expect(canceled.status).toBe(200);
    expect(canceled.body.data.status).toBe("CANCELED");
    expect(canceled.body.data.canceledAt).toBeTruthy();
    const atCancel = canceled.body.data;
    expect(atCancel.completedItems).toBeLessThan(120);

    // Batches already running finish; none of their results may land.
    await new Promise((resolve) => setTimeout(resolve, BATCH_MS + 500));
    const { body } = await stack.api("GET", `/v1/metric/collection-jobs/${jobId}`);
    expect(body.data).toMatchObject({
      status: "CANCELED",
      completedItems: atCancel.completedItems,
      failedItems: atCancel.failedItems,
    });
    const values = await jobValues(stack.api, jobId);
    expect(values).toHaveLength(atCancel.completedItems + atCancel.failedItems);
    // No new evaluation starts once in-flight batches (at most one batch each) drained.
    const lateStarts = evaluationStarts.filter((t) => t > canceledAt + BATCH_MS + 500);
    expect(lateStarts).toHaveLength(0);

    // Cancel is idempotent; a finished job cannot be canceled.
    const again = await stack.api("POST", `/v1/metric/collection-jobs/${jobId}/cancel`);
    expect(again.status).toBe(200);
    expect(again.body.data.status).toBe("CANCELED");
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
