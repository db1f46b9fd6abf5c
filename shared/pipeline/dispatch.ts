/**
 * Fan-out (docs/pipeline.md, step 2): expands one page of a job into one work message per call x metric,
 * the metrics of a call adjacent so one evaluator batch can share the call's load (and
 * the LLM prompt cache). Re-running a page only re-sends messages: counting is exactly-once
 * downstream, so a retried dispatch cannot double-count.
 */
import { requireQueueUrl } from "../config.ts";
import { logger } from "../logger.ts";
import { type DispatchMessage, type FrozenMetric, isRunningStatus, type WorkItem } from "../schemas/job.ts";
import { getJobItem, getJobPage, transitionJob } from "../store/jobs.ts";
import { parsePageEntry } from "./create-job.ts";
import { sendMessages, workMessage } from "./queue.ts";

/** Jobs no one waits on: a backfill's or a policy's. Their work goes after the organization's API jobs. */
export const isBulkJob = (job: { triggeredBy?: unknown }): boolean =>
  job.triggeredBy === "SCHEDULE" || job.triggeredBy === "METRIC_POLICY";

export function workItemsForPage(
  orgId: string,
  jobId: string,
  entries: string[],
  metrics: FrozenMetric[],
  bulk = false,
): WorkItem[] {
  return entries.flatMap((entry) => {
    const { callId, metricIds } = parsePageEntry(entry);
    const selected = metricIds ? metrics.filter((metric) => metricIds.includes(metric.id)) : metrics;
    return selected.map((metric) => ({
      orgId,
      jobId,
      callId,
      metricId: metric.id,
      metricVersion: metric.version,
      ...(bulk ? { bulk: true as const } : {}),
    }));
  });
}

export async function dispatchPage({ orgId, jobId, page }: DispatchMessage): Promise<void> {
  const job = await getJobItem(orgId, jobId, true);
  if (!job) {
    logger.warn("Dispatch for a job that does not exist; dropped", { orgId, jobId });
    return;
  }
  if (!isRunningStatus(job.status)) {
    logger.info("Job is no longer running; page not dispatched", { jobId, page, status: job.status as string });
    return;
  }
  if (job.status === "PENDING") {
    await transitionJob(orgId, jobId, ["PENDING"], "PROCESSING", { startedAt: new Date().toISOString() });
  }
  const callIds = await getJobPage(orgId, jobId, page);
  if (!callIds) throw new Error(`Job ${jobId} has no page ${page}`);
  const items = workItemsForPage(orgId, jobId, callIds, job.metrics as FrozenMetric[], isBulkJob(job));
  await sendMessages(
    requireQueueUrl("work"),
    items.map((item) => workMessage(item)),
  );
  logger.info("Dispatched page", { jobId, page, items: items.length });
}
