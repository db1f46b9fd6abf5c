/**
 * Retry: a new job over exactly the ERROR items of a finished job, with the metric
 * versions that job froze, so a retry re-runs what failed and nothing else.
 */
import { badRequest, conflict, notFound } from "../http/errors.ts";
import type { CollectionJob } from "../schemas/job.ts";
import { getJob } from "../store/jobs.ts";
import { listFailedItems } from "../store/values.ts";
import { pagesForEntries, startJob } from "./create-job.ts";

export async function retryFailedItems(orgId: string, jobId: string): Promise<CollectionJob> {
  const original = await getJob(orgId, jobId);
  if (!original) throw notFound("Collection job", jobId);
  if (original.status === "PENDING" || original.status === "PROCESSING") {
    throw conflict(`Job ${jobId} is still ${original.status}; retry it once it has finished`);
  }
  const failed = await listFailedItems(orgId, jobId);
  if (failed.length === 0) throw badRequest(`Job ${jobId} has no failed items to retry`);

  const failedMetricIds = new Set(failed.map((item) => item.metricId));
  // The job's own metric order keeps a call's items adjacent in the same order as before.
  const metrics = original.metrics.filter((metric) => failedMetricIds.has(metric.id));
  const byCall = Map.groupBy(failed, (item) => item.callId);
  const entries = [...byCall].map(([callId, items]) => ({
    callId,
    metricIds: metrics.filter((m) => items.some((item) => item.metricId === m.id)).map((m) => m.id),
  }));
  return startJob(orgId, {
    metrics,
    pages: pagesForEntries(entries),
    totalItems: failed.length,
    callCount: entries.length,
    metadata: { ...original.metadata, retryOf: jobId },
    triggeredBy: "RETRY",
    policyIds: original.policyIds,
    webhookUrl: original.webhookUrl,
  });
}
