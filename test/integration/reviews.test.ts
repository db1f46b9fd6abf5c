/** People confirm or correct values; the agreement report says how often the judge matches them. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { builtInMetric, createCalls, createMetrics, jobValues, llmMetric } from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitForJobEnd } from "../support/stack.ts";

describe("value reviews and agreement", () => {
  let stack: TestStack;
  let callIds: string[];
  let jobId: string;
  const review = (callId: string, metric: string, body: object, api = stack.api) =>
    api("PUT", `/v1/metric/collection-jobs/${jobId}/metric-values/${callId}/${metric}/review`, body);
  const agreement = async (metric: string) =>
    (await stack.api("GET", `/v1/metric/definitions/${metric}/agreement`)).body.data;

  beforeAll(async () => {
    stack = await startTestStack();
    callIds = await createCalls(stack.api, 3);
    await createMetrics(stack.api, [
      llmMetric("rev-refund", "BOOLEAN", 'Did the customer ask for a "refund"?'),
      builtInMetric("rev-sorry", { kind: "KEYWORD_MATCH_COUNT", keywords: ["sorry"] }, "COUNT"),
    ]);
    const created = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds,
      metrics: [{ id: "rev-refund" }, { id: "rev-sorry" }],
    });
    jobId = created.body.data.id;
    expect((await waitForJobEnd(stack.api, jobId)).status).toBe("COMPLETED");
  });
  afterAll(() => stack?.stop());

  it("keeps the judge's value beside the reviewed one, checked against the definition", async () => {
    const [first, second] = callIds as [string, string];
    const confirmed = await review(first, "rev-refund", { reviewedValue: true });
    expect(confirmed.status).toBe(200);
    expect(confirmed.body.data).toMatchObject({ value: true, reviewedValue: true, reviewedAt: expect.any(String) });
    const corrected = await review(second, "rev-refund", {
      reviewedValue: false,
      note: "They asked for an exchange",
    });
    expect(corrected.body.data).toMatchObject({
      value: true,
      reviewedValue: false,
      reviewNote: "They asked for an exchange",
    });
    const values = await jobValues(stack.api, jobId);
    const reviewedOf = (callId: string) =>
      values.find((value) => value.callId === callId && value.slug === "rev-refund");
    expect(reviewedOf(second)).toMatchObject({ value: true, reviewedValue: false, reviewedBy: expect.any(String) });
    expect(reviewedOf(callIds[2]!)?.reviewedValue).toBeUndefined();

    const wrongType = await review(first, "rev-refund", { reviewedValue: "yes" });
    expect(wrongType.status).toBe(400);
    expect(wrongType.body.error.message).toContain("BOOLEAN");
    expect((await review("no-such-call", "rev-refund", { reviewedValue: true })).status).toBe(404);
    const other = await stack.newOrganization("Cannot review others' values");
    expect((await review(first, "rev-refund", { reviewedValue: false }, other.api)).status).toBe(404);
  });

  it("reports accuracy, and the mean absolute error of numbers, in all and per version", async () => {
    const [first, second] = callIds as [string, string];
    expect(await agreement("rev-refund")).toMatchObject({
      slug: "rev-refund",
      outputType: "BOOLEAN",
      reviewed: 2,
      compared: 2,
      agreed: 1,
      accuracy: 0.5,
      byVersion: [{ version: 1, reviewed: 2, agreed: 1, accuracy: 0.5 }],
    });
    // The sample calls say "sorry" twice.
    await review(first, "rev-sorry", { reviewedValue: 3 });
    await review(second, "rev-sorry", { reviewedValue: 2 });
    expect(await agreement("rev-sorry")).toMatchObject({
      reviewed: 2,
      agreed: 1,
      accuracy: 0.5,
      meanAbsoluteError: 0.5,
    });

    // A new review replaces the earlier one (and its note).
    const changed = await review(second, "rev-refund", { reviewedValue: true });
    expect(changed.body.data.reviewNote).toBeUndefined();
    expect(await agreement("rev-refund")).toMatchObject({ reviewed: 2, agreed: 2, accuracy: 1 });

    // A deleted call takes its reviews with it.
    expect((await stack.api("DELETE", `/v1/call/${first}`)).status).toBe(200);
    expect(await agreement("rev-refund")).toMatchObject({ reviewed: 1, agreed: 1 });
    const unreviewed = await createMetrics(stack.api, [builtInMetric("rev-none", { kind: "TURN_COUNT" }, "COUNT")]);
    expect(await agreement(unreviewed[0]!.id)).toMatchObject({
      reviewed: 0,
      accuracy: null,
      meanAbsoluteError: null,
      byVersion: [],
    });
  });
});
