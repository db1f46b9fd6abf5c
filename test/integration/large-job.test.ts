import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { builtInMetric, sampleCall } from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitForJobEnd } from "../support/stack.ts";

const CALLS = 500;
const METRICS = 20;

describe("a 10,000-item job", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(() => stack?.stop());

  // Completion time is not the point here (the benchmark measures it); only a hang may fail it.
  it("is accepted quickly (fan-out is asynchronous) and completes with exact counts", async () => {
    const callIds: string[] = [];
    for (let i = 0; i < CALLS; i += 25) {
      const batch = await Promise.all(
        Array.from({ length: 25 }, (_, j) => stack.api("POST", "/v1/call", sampleCall({}, i + j))),
      );
      callIds.push(...batch.map((r) => r.body.data.id));
    }
    const metricIds: string[] = [];
    for (let i = 0; i < METRICS; i++) {
      const { body } = await stack.api(
        "POST",
        "/v1/metric/definitions",
        builtInMetric(`keyword-${i}`, { kind: "KEYWORD_MATCH_COUNT", keywords: [`word${i}`, "sorry"] }, "COUNT"),
      );
      metricIds.push(body.data.id);
    }

    const started = performance.now();
    const created = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds,
      metrics: metricIds.map((id) => ({ id })),
    });
    const acceptMs = performance.now() - started;
    expect(created.status).toBe(201);
    expect(created.body.data.totalItems).toBe(10_000);
    // The precise figure belongs to `npm run bench`; this bound only catches a synchronous fan-out.
    expect(acceptMs).toBeLessThan(3_000);
    console.log(`10,000-item job accepted in ${acceptMs.toFixed(0)} ms`);

    const job = await waitForJobEnd(stack.api, created.body.data.id, 840_000);
    expect(job).toMatchObject({ status: "COMPLETED", completedItems: 10_000, failedItems: 0 });
  }, 900_000);
});
