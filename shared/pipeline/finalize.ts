/**
 * Finalization (docs/pipeline.md, step 5), fed by the table's stream: a PROCESSING job whose counters
 * reached its total is conditionally moved to COMPLETED (or FAILED when every item
 * failed). The condition makes replays and concurrent finalizers harmless. The scheduled
 * reconciler (reconcile.ts) finalizes through the same functions when a record was lost.
 */
import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import { unmarshall } from "@aws-sdk/util-dynamodb";
import type { DynamoDBBatchResponse, DynamoDBRecord } from "aws-lambda";
import { requireQueueUrl } from "../config.ts";
import { logger } from "../logger.ts";
import { deleteRunningJobMarker, expireJobPages, transitionJob } from "../store/jobs.ts";
import { markWebhookPending } from "../store/webhooks.ts";
import { deliveryIdFor, type WebhookMessage } from "../webhooks/deliver.ts";
import { sendMessages } from "./queue.ts";

/** The job fields finalization reads: a stream image or a stored job item. */
export interface FinalizableJob {
  entity?: string;
  orgId: string;
  id: string;
  status: string;
  totalItems: number;
  completedItems: number;
  failedItems: number;
  llmBlockedReason?: string;
  webhookUrl?: string;
  webhookProgress?: boolean;
  /** The job's `expiresAt`, as stored. */
  deadlineAt?: string;
  pageCount?: number;
}

/** Why a job failed: the reason its LLM calls were stopped, when that is what failed it. */
const failureMessage = (job: FinalizableJob) =>
  `All ${job.totalItems} items failed${job.llmBlockedReason ? `: ${job.llmBlockedReason}` : ""}`;

export function finishedStatus(job: FinalizableJob): "COMPLETED" | "FAILED" | undefined {
  if (job.entity !== "Job" || job.status !== "PROCESSING") return undefined;
  const done = (job.completedItems ?? 0) + (job.failedItems ?? 0);
  if (done < job.totalItems) return undefined;
  return job.failedItems >= job.totalItems ? "FAILED" : "COMPLETED";
}

export const FINAL_STATUSES: ReadonlySet<string> = new Set(["COMPLETED", "FAILED", "CANCELED", "EXPIRED"]);

/**
 * Queues the webhook of a job that reached a final status, once: a replayed record or a
 * second caller (the reconciler) finds the delivery recorded (and attempted) already.
 */
export async function announceJobEnd(job: Pick<FinalizableJob, "orgId" | "id" | "status" | "webhookUrl">) {
  if (!job.webhookUrl || !FINAL_STATUSES.has(job.status)) return;
  const queuedAt = new Date().toISOString();
  const deliveryId = deliveryIdFor(job.id, job.status);
  if (!(await markWebhookPending(job.orgId, job.id, { id: deliveryId, status: "pending", attempts: 0, queuedAt }))) {
    return;
  }
  const message: WebhookMessage = { orgId: job.orgId, jobId: job.id, deliveryId, queuedAt };
  await sendMessages(requireQueueUrl("webhook"), [JSON.stringify(message)]);
}

/**
 * Moves a PROCESSING job whose counters reached its total to COMPLETED or FAILED. Returns
 * the final status when this call made the move; undefined when the job is not finished
 * or another finalizer got there first.
 */
export async function finalizeJob(job: FinalizableJob): Promise<"COMPLETED" | "FAILED" | undefined> {
  const status = finishedStatus(job);
  if (!status) return undefined;
  const finished = await transitionJob(job.orgId, job.id, ["PROCESSING"], status, {
    completedAt: new Date().toISOString(),
    ...(status === "FAILED" ? { errorMessage: failureMessage(job) } : {}),
  });
  if (!finished) return undefined;
  logger.info("Job finished", { jobId: job.id, status });
  return status;
}

/** Progress events come at each tenth of a job's items; the completion event stands for the last. */
const PROGRESS_STEPS = 10;
const tenthsDone = (job: FinalizableJob) =>
  Math.floor((((job.completedItems ?? 0) + (job.failedItems ?? 0)) * PROGRESS_STEPS) / job.totalItems);

/**
 * The record shows a running job that asked for progress events passing a tenth of its
 * items: queue one event for the highest tenth passed. A replayed record queues the same
 * delivery id again (receivers drop duplicates by it).
 */
async function announceProgress(record: DynamoDBRecord, job: FinalizableJob): Promise<void> {
  const before = record.dynamodb?.OldImage;
  if (!job.webhookUrl || !job.webhookProgress || job.status !== "PROCESSING" || !before) return;
  const reached = tenthsDone(job);
  const previous = tenthsDone(unmarshall(before as Record<string, AttributeValue>) as FinalizableJob);
  if (reached >= PROGRESS_STEPS || reached <= previous) return;
  const percent = (reached * 100) / PROGRESS_STEPS;
  const message: WebhookMessage = {
    orgId: job.orgId,
    jobId: job.id,
    deliveryId: `${deliveryIdFor(job.id, "progress")}_${percent}`,
    queuedAt: new Date().toISOString(),
    progressPercent: percent,
  };
  await sendMessages(requireQueueUrl("webhook"), [JSON.stringify(message)]);
}

/** The record shows the job entering a final status: announce it and drop its running marker. */
async function onJobEnded(record: DynamoDBRecord, job: FinalizableJob): Promise<void> {
  const before = record.dynamodb?.OldImage;
  const previousStatus = before
    ? (unmarshall(before as Record<string, AttributeValue>) as FinalizableJob).status
    : undefined;
  if (!FINAL_STATUSES.has(job.status) || !previousStatus || FINAL_STATUSES.has(previousStatus)) return;
  await announceJobEnd(job);
  await deleteRunningJobMarker(job.orgId, job.id, job);
  await expireJobPages(job.orgId, job.id, Number(job.pageCount ?? 0));
}

export async function finalizeJobs(records: DynamoDBRecord[]): Promise<DynamoDBBatchResponse> {
  for (const record of records) {
    const image = record.dynamodb?.NewImage;
    if (!image) continue;
    const job = unmarshall(image as Record<string, AttributeValue>) as FinalizableJob;
    try {
      await onJobEnded(record, job);
      await announceProgress(record, job);
    } catch (error) {
      logger.error("Could not announce the end of the job", { jobId: job.id, error: error as Error });
      return { batchItemFailures: [{ itemIdentifier: record.dynamodb?.SequenceNumber ?? "" }] };
    }
    try {
      await finalizeJob(job);
    } catch (error) {
      logger.error("Could not finalize job", { jobId: job.id, error: error as Error });
      // Lambda resumes from this record; everything before it is done.
      return { batchItemFailures: [{ itemIdentifier: record.dynamodb?.SequenceNumber ?? "" }] };
    }
  }
  return { batchItemFailures: [] };
}
