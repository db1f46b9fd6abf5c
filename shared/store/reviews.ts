/**
 * Human review of metric values (Cekura-style): a person confirms or corrects a value; the
 * judge's original stays. Each review is also copied under its definition, so the agreement
 * report (how often the judge matches reviewers) reads one partition, not every job.
 */
import { notFound, parseOrInvalid } from "../errors.ts";
import { keys } from "../keys.ts";
import type { MetricValue } from "../schemas/job.ts";
import type { MetricDefinition, OutputType } from "../schemas/metric.ts";
import { valueSchemaOf } from "../schemas/metric-values.ts";
import type { Agreement, ReviewInput } from "../schemas/review.ts";
import { getMetricVersions } from "./metrics.ts";
import { queryAll } from "./query.ts";
import { table } from "./table.ts";
import { toMetricValue } from "./values.ts";

type Item = Record<string, unknown>;
const NUMERIC_TYPES = new Set<OutputType>(["NUMERIC", "SCALE", "COUNT"]);

export interface ValueRef {
  jobId: string;
  callId: string;
  metricId: string;
}

/** Records `reviewerKeyId`'s review of a value; answers the value with it. */
export async function reviewValue(
  orgId: string,
  reviewerKeyId: string,
  { jobId, callId, metricId }: ValueRef,
  input: ReviewInput,
): Promise<MetricValue> {
  const key = keys.itemResult(orgId, jobId, callId, metricId);
  const value = await table.get(key, { ConsistentRead: true });
  if (!value) throw notFound("Metric value", `${jobId}/${callId}/${metricId}`);
  const version = Number(value.metricVersion);
  const definition = (await getMetricVersions(orgId, [{ metricId, version }])).get(`${metricId}@${version}`);
  if (!definition) throw notFound("Metric definition version", `${metricId}@${version}`);
  const reviewedValue = parseOrInvalid(valueSchemaOf(definition), input.reviewedValue, {
    source: "body.reviewedValue",
    what: `value for a ${definition.outputType} metric`,
  });
  const reviewedAt = new Date().toISOString();
  const review = {
    reviewedValue,
    reviewedBy: reviewerKeyId,
    reviewedAt,
    ...(input.note ? { reviewNote: input.note } : {}),
  };
  // The copy expires with the value (the organization's retention), and goes with its call.
  const expiresAt = typeof value.expiresAt === "number" ? { expiresAt: value.expiresAt } : {};
  await table.transactWrite([
    {
      Update: {
        Key: key,
        // A review without a note replaces an earlier one's note too.
        UpdateExpression: input.note
          ? "SET reviewedValue = :reviewed, reviewedBy = :by, reviewedAt = :at, reviewNote = :note"
          : "SET reviewedValue = :reviewed, reviewedBy = :by, reviewedAt = :at REMOVE reviewNote",
        ConditionExpression: "attribute_exists(pk)",
        ExpressionAttributeValues: {
          ":reviewed": reviewedValue,
          ":by": reviewerKeyId,
          ":at": reviewedAt,
          ...(input.note ? { ":note": input.note } : {}),
        },
      },
    },
    {
      Put: {
        Item: {
          ...keys.metricReview(orgId, metricId, callId, jobId),
          entity: "MetricReview",
          metricVersion: version,
          captureStatus: value.captureStatus,
          ...(value.value === undefined ? {} : { judgedValue: value.value }),
          reviewedValue,
          reviewedAt,
          ...expiresAt,
        },
      },
    },
  ]);
  const { reviewNote: _earlier, ...judged } = value;
  return toMetricValue({ ...judged, ...review });
}

/** Labels in any order are the same answer; everything else compares as it is. */
const sameAnswer = (a: unknown, b: unknown) =>
  Array.isArray(a) && Array.isArray(b)
    ? JSON.stringify([...a].sort()) === JSON.stringify([...b].sort())
    : JSON.stringify(a) === JSON.stringify(b);

function figures(reviews: Item[], numeric: boolean) {
  const compared = reviews.filter((review) => review.captureStatus === "SUCCESS" && review.judgedValue !== undefined);
  const agreed = compared.filter((review) => sameAnswer(review.judgedValue, review.reviewedValue)).length;
  const errors = numeric
    ? compared.map((review) => Math.abs(Number(review.judgedValue) - Number(review.reviewedValue)))
    : [];
  return {
    reviewed: reviews.length,
    compared: compared.length,
    agreed,
    accuracy: compared.length > 0 ? agreed / compared.length : null,
    ...(numeric
      ? { meanAbsoluteError: errors.length > 0 ? errors.reduce((sum, e) => sum + e, 0) / errors.length : null }
      : {}),
  };
}

/** How often the judge's values of `definition` match reviewed values: in all, and per version. */
export async function agreementReport(orgId: string, definition: MetricDefinition): Promise<Agreement> {
  const reviews = await queryAll({
    KeyConditionExpression: "pk = :pk",
    ExpressionAttributeValues: { ":pk": keys.metricReviews(orgId, definition.id) },
  });
  const numeric = NUMERIC_TYPES.has(definition.outputType);
  const byVersion = [...Map.groupBy(reviews, (review) => Number(review.metricVersion))]
    .sort(([a], [b]) => b - a)
    .map(([version, ofVersion]) => ({ version, ...figures(ofVersion, numeric) }));
  return {
    metricDefinitionId: definition.id,
    slug: definition.slug,
    outputType: definition.outputType,
    ...figures(reviews, numeric),
    byVersion,
  };
}
