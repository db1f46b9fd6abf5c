/**
 * Cancel (docs/pipeline.md, step 6) without racing finalization: a job whose every item is recorded is
 * finished, not canceled, even when the cancel arrives before the stream router finalized it.
 */
import { conflict, notFound } from "../errors.ts";
import type { CollectionJob } from "../schemas/job.ts";
import { cancelUnfinishedJob, getJobItem, toCollectionJob } from "../store/jobs.ts";
import { type FinalizableJob, finalizeJob, finishedStatus } from "./finalize.ts";

/** Each lost race means items were recorded meanwhile; the job finishes within a few. */
const MAX_ATTEMPTS = 20;

export async function cancelJob(orgId: string, jobId: string): Promise<CollectionJob> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const item = await getJobItem(orgId, jobId, true);
    if (!item) throw notFound("Collection job", jobId);
    const job = toCollectionJob(item);
    if (job.status === "CANCELED") return job;
    if (job.status !== "PENDING" && job.status !== "PROCESSING") {
      throw conflict(`Collection job ${jobId} is already ${job.status} and cannot be canceled`);
    }
    if (finishedStatus(item as unknown as FinalizableJob)) {
      // Fully recorded: finish it as the finalizer would, then answer with what it became.
      await finalizeJob(item as unknown as FinalizableJob);
      continue;
    }
    const canceled = await cancelUnfinishedJob(orgId, jobId, item);
    if (canceled) return canceled;
  }
  throw conflict(`Collection job ${jobId} kept changing while being canceled; try again`);
}
