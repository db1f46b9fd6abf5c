/**
 * Retry: a new job over exactly the ERROR items of a finished job, with the metric
 * versions that job froze, so a retry re-runs what failed and nothing else.
 *
 * Idempotent: the n-th retry of a job has an id derived from (job, n). Concurrent retries
 * create the same job once and all answer with it; a further retry moves on to n + 1 only
 * once the n-th has finished.
 */
import { conflict, invalid, isDomainError, notFound } from "../errors.ts";
import { type CollectionJob, isRunningStatus } from "../schemas/job.ts";
import { getJobItem, toCollectionJob } from "../store/jobs.ts";
import { listFailedItems } from "../store/values.ts";
import { pagesForEntries, type StartJobInput, startJob } from "./create-job.ts";
import { derivedJobId } from "./job-ids.ts";

/** A job is retried a handful of times at most; past this, something is wrong. */
const MAX_RETRIES = 100;

const retryJobId = (jobId: string, attempt: number) => derivedJobId(`retry|${jobId}|${attempt}`);

/** The running retry of the job, or a new one after the last finished retry. */
async function startOrJoinRetry(orgId: string, jobId: string, input: StartJobInput): Promise<CollectionJob> {
  for (let attempt = 1; attempt <= MAX_RETRIES; attempt++) {
    const id = retryJobId(jobId, attempt);
    const existing = await getJobItem(orgId, id, true);
    if (!existing) {
      try {
        return await startJob(orgId, { ...input, jobId: id });
      } catch (error) {
        // A concurrent retry created it first: answer with that job.
        if (!isDomainError(error, "conflict")) throw error;
        const created = await getJobItem(orgId, id, true);
        if (created) return toCollectionJob(created);
        throw error;
      }
    }
    const job = toCollectionJob(existing);
    if (isRunningStatus(job.status)) return job;
  }
  throw conflict(`Job ${jobId} has been retried ${MAX_RETRIES} times already`);
}

export async function retryFailedItems(orgId: string, jobId: string): Promise<CollectionJob> {
  // Consistent: the job and its items were written a moment ago, and concurrent retries must agree.
  const originalItem = await getJobItem(orgId, jobId, true);
  const original = originalItem ? toCollectionJob(originalItem) : undefined;
  if (!original) throw notFound("Collection job", jobId);
  if (isRunningStatus(original.status)) {
    throw conflict(`Job ${jobId} is still ${original.status}; retry it once it has finished`);
  }
  const failed = await listFailedItems(orgId, jobId);
  if (failed.length === 0) throw invalid(`Job ${jobId} has no failed items to retry`);

  const failedMetricIds = new Set(failed.map((item) => item.metricId));
  // The job's own metric order keeps a call's items adjacent in the same order as before.
  const metrics = original.metrics.filter((metric) => failedMetricIds.has(metric.id));
  const byCall = Map.groupBy(failed, (item) => item.callId);
  const entries = [...byCall].map(([callId, items]) => ({
    callId,
    metricIds: metrics.filter((m) => items.some((item) => item.metricId === m.id)).map((m) => m.id),
  }));
  return startOrJoinRetry(orgId, jobId, {
    metrics,
    pages: pagesForEntries(entries),
    totalItems: failed.length,
    callCount: entries.length,
    metadata: { ...original.metadata, retryOf: jobId },
    triggeredBy: "RETRY",
    policyIds: original.policyIds,
    webhookUrl: original.webhookUrl,
    // Its receiver already holds the original's own secret, if it had one.
    ...(typeof originalItem?.webhookSecret === "string" ? { webhookSecret: originalItem.webhookSecret } : {}),
    judgeMode: original.judgeMode,
    llmMode: original.llmMode,
  });
}
