/**
 * What a completion webhook carries besides the job: each metric's summary, the paths of the
 * job and its values, and the values themselves when the job is small. Read from the job's
 * values at delivery; a job too large to read within a delivery gets the paths only.
 */
import {
  type CaptureStatus,
  type CollectionJob,
  captureStatuses,
  type FrozenMetric,
  type MetricValue,
} from "../schemas/job.ts";
import { listAllJobValues } from "../store/values.ts";

/** Jobs with at most this many items carry their values (each value is under 1 KB). */
export const INLINE_VALUES_LIMIT = 100;
/** Jobs with more items than this get no summary: reading them would outlast a delivery. */
export const SUMMARY_ITEMS_LIMIT = 20_000;

export interface MetricSummary {
  metricDefinitionId: string;
  slug: string;
  version: number;
  counts: Record<CaptureStatus, number>;
  /** BOOLEAN: the share of SUCCESS values that are true. */
  passRate?: number;
  /** Numeric values (NUMERIC, SCALE, COUNT): over the SUCCESS values. */
  average?: number;
  min?: number;
  max?: number;
  /** CLASSIFICATION: how many SUCCESS values carry each label. */
  labels?: Record<string, number>;
}

export interface JobResults {
  /** Paths on the API the job was created with. */
  links: { job: string; values: string };
  metrics?: MetricSummary[];
  values?: MetricValue[];
}

/** One summary per metric of the job, in the job's order, its statistics by the values' type. */
export function summarizeValues(metrics: FrozenMetric[], values: MetricValue[]): MetricSummary[] {
  return metrics.map((metric) => {
    const own = values.filter((v) => v.metricDefinitionId === metric.id && v.metricVersion === metric.version);
    const counts = Object.fromEntries(captureStatuses.map((status) => [status, 0])) as Record<CaptureStatus, number>;
    for (const value of own) counts[value.captureStatus]++;
    const answers = own.flatMap((v) => (v.captureStatus === "SUCCESS" && v.value !== undefined ? [v.value] : []));
    return {
      metricDefinitionId: metric.id,
      slug: metric.slug,
      version: metric.version,
      counts,
      ...statistics(answers),
    };
  });
}

function statistics(answers: NonNullable<MetricValue["value"]>[]): Partial<MetricSummary> {
  if (answers.length === 0) return {};
  if (answers.every((answer) => typeof answer === "boolean")) {
    return { passRate: answers.filter(Boolean).length / answers.length };
  }
  if (answers.every((answer) => typeof answer === "number")) {
    const numbers = answers as number[];
    return {
      average: numbers.reduce((sum, n) => sum + n, 0) / numbers.length,
      min: Math.min(...numbers),
      max: Math.max(...numbers),
    };
  }
  const labels: Record<string, number> = {};
  for (const label of answers.flatMap((answer) => (Array.isArray(answer) ? answer : [String(answer)]))) {
    labels[label] = (labels[label] ?? 0) + 1;
  }
  return { labels };
}

export async function jobResults(orgId: string, job: CollectionJob): Promise<JobResults> {
  const path = `/v1/metric/collection-jobs/${job.id}`;
  const links = { job: path, values: `${path}/metric-values?status=all` };
  if (job.totalItems > SUMMARY_ITEMS_LIMIT) return { links };
  const values = await listAllJobValues(orgId, job.id);
  return {
    links,
    metrics: summarizeValues(job.metrics, values),
    ...(job.totalItems <= INLINE_VALUES_LIMIT ? { values } : {}),
  };
}
