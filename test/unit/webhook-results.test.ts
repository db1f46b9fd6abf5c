/** What a completion webhook carries: per-metric summaries by value type, values only for small jobs. */
import { DynamoDBDocumentClient, QueryCommand } from "@aws-sdk/lib-dynamodb";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import type { CollectionJob, MetricValue } from "../../shared/schemas/job.ts";
import {
  INLINE_VALUES_LIMIT,
  jobResults,
  SUMMARY_ITEMS_LIMIT,
  summarizeValues,
} from "../../shared/webhooks/results.ts";

const ddb = mockClient(DynamoDBDocumentClient);
const intent = { id: "m-intent", version: 2, slug: "intent", name: "Intent" };
const topics = { id: "m-topics", version: 1, slug: "topics", name: "Topics" };

const value = (metric: { id: string; version: number }, callId: string, extra: Partial<MetricValue>): MetricValue => ({
  jobId: "job-1",
  callId,
  metricDefinitionId: metric.id,
  metricVersion: metric.version,
  captureStatus: "SUCCESS",
  computedAt: "2026-12-01T00:00:00.000Z",
  context: "CALL",
  ...extra,
});

describe("summarizeValues", () => {
  it("counts each label of CLASSIFICATION values, single or multiple, over SUCCESS values only", () => {
    const summaries = summarizeValues(
      [intent, topics],
      [
        value(intent, "c1", { value: "billing" }),
        value(intent, "c2", { value: "billing" }),
        value(intent, "c3", { value: "cancel" }),
        value(intent, "c4", { captureStatus: "ERROR", errorMessage: "model failed" }),
        // Another version of the same definition is not this job's metric.
        value({ id: intent.id, version: 1 }, "c5", { value: "cancel" }),
        value(topics, "c1", { value: ["billing", "refund"] }),
        value(topics, "c2", { value: ["refund"] }),
        value(topics, "c3", { captureStatus: "NOT_APPLICABLE" }),
      ],
    );
    expect(summaries).toEqual([
      {
        metricDefinitionId: "m-intent",
        slug: "intent",
        version: 2,
        counts: { SUCCESS: 3, NOT_APPLICABLE: 0, DATA_MISSING: 0, ERROR: 1 },
        labels: { billing: 2, cancel: 1 },
      },
      {
        metricDefinitionId: "m-topics",
        slug: "topics",
        version: 1,
        counts: { SUCCESS: 2, NOT_APPLICABLE: 1, DATA_MISSING: 0, ERROR: 0 },
        labels: { billing: 1, refund: 2 },
      },
    ]);
  });

  it("gives only counts to a metric with no SUCCESS value", () => {
    const [summary] = summarizeValues([intent], [value(intent, "c1", { captureStatus: "DATA_MISSING" })]);
    expect(summary).toEqual({
      metricDefinitionId: "m-intent",
      slug: "intent",
      version: 2,
      counts: { SUCCESS: 0, NOT_APPLICABLE: 0, DATA_MISSING: 1, ERROR: 0 },
    });
  });
});

describe("jobResults", () => {
  beforeEach(() => ddb.reset());
  const job = (totalItems: number) => ({ id: "job-1", totalItems, metrics: [intent] }) as unknown as CollectionJob;

  it("leaves the values out of a job with more than the inline limit, and the summary out of a very large one", async () => {
    const stored = Array.from({ length: INLINE_VALUES_LIMIT + 1 }, (_, i) => ({
      pk: "ORG#o#JOB#job-1",
      sk: `ITEM#c${i}#m-intent`,
      metricVersion: 2,
      captureStatus: "SUCCESS",
      value: "billing",
    }));
    ddb.on(QueryCommand).resolves({ Items: stored });
    const medium = await jobResults("o", job(INLINE_VALUES_LIMIT + 1));
    expect(medium.values).toBeUndefined();
    expect(medium.metrics?.[0]?.labels).toEqual({ billing: INLINE_VALUES_LIMIT + 1 });

    ddb.reset();
    const large = await jobResults("o", job(SUMMARY_ITEMS_LIMIT + 1));
    expect(large).toEqual({
      links: {
        job: "/v1/metric/collection-jobs/job-1",
        values: "/v1/metric/collection-jobs/job-1/metric-values?status=all",
      },
    });
    expect(ddb.commandCalls(QueryCommand)).toHaveLength(0);
  });
});
