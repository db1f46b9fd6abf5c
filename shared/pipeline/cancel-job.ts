/**
 * Cancel and expiry (docs/pipeline.md, step 6) without racing finalization: a job whose every
 * item is recorded is finished, not stopped, even when the stop comes before the stream
 * router finalized it.
 */
import { conflict, notFound } from "../errors.ts";
import { type CollectionJob, isRunningStatus } from "../schemas/job.ts";
import { getJobItem, type JobStop, stopUnfinishedJob, toCollectionJob } from "../store/jobs.ts";
import { type FinalizableJob, finalizeJob, finishedStatus } from "./finalize.ts";

/** Each lost race means items were recorded meanwhile; the job finishes within a few. */
const MAX_ATTEMPTS = 20;

/**
 * Stops a running job as `stop` says, or finishes it when all its items are recorded.
 * Answers the job as it ended, or undefined when it is gone; a job that ended otherwise
 * before is answered as it is.
 */
export async function stopJob(orgId: string, jobId: string, stop: JobStop): Promise<CollectionJob | undefined> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const item = await getJobItem(orgId, jobId, true);
    if (!item) return undefined;
    const job = toCollectionJob(item);
    if (!isRunningStatus(job.status)) return job;
    if (finishedStatus(item as unknown as FinalizableJob)) {
      // Fully recorded: finish it as the finalizer would, then answer with what it became.
      await finalizeJob(item as unknown as FinalizableJob);
      continue;
    }
    const stopped = await stopUnfinishedJob(orgId, jobId, item, stop);
    if (stopped) return stopped;
  }
  throw conflict(`Collection job ${jobId} kept changing while being stopped; try again`);
}

/** Cancels a running job; a canceled one is answered as it is (idempotent), a finished one is 409. */
export async function cancelJob(orgId: string, jobId: string): Promise<CollectionJob> {
  const job = await stopJob(orgId, jobId, { status: "CANCELED", at: "canceledAt" });
  if (!job) throw notFound("Collection job", jobId);
  if (job.status !== "CANCELED") {
    throw conflict(`Collection job ${jobId} is already ${job.status} and cannot be canceled`);
  }
  return job;
}
