/**
 * Finalization (DESIGN §3.5), fed by the table's stream: a PROCESSING job whose counters
 * reached its total is conditionally moved to COMPLETED (or FAILED when every item
 * failed). The condition makes replays and concurrent finalizers harmless.
 */
import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import { unmarshall } from "@aws-sdk/util-dynamodb";
import type { DynamoDBBatchResponse, DynamoDBRecord } from "aws-lambda";
import { requireQueueUrl } from "../config.ts";
import { logger } from "../logger.ts";
import { transitionJob } from "../store/jobs.ts";
import { markWebhookPending } from "../store/webhooks.ts";
import { deliveryIdFor, type WebhookMessage } from "../webhooks/deliver.ts";
import { sendMessages } from "./queue.ts";

interface JobImage {
  entity?: string;
  orgId: string;
  id: string;
  status: string;
  totalItems: number;
  completedItems: number;
  failedItems: number;
  llmBlockedReason?: string;
  webhookUrl?: string;
}

/** Why a job failed: the reason its LLM calls were stopped, when that is what failed it. */
const failureMessage = (job: JobImage) =>
  `All ${job.totalItems} items failed${job.llmBlockedReason ? `: ${job.llmBlockedReason}` : ""}`;

export function finishedStatus(job: JobImage): "COMPLETED" | "FAILED" | undefined {
  if (job.entity !== "Job" || job.status !== "PROCESSING") return undefined;
  const done = (job.completedItems ?? 0) + (job.failedItems ?? 0);
  if (done < job.totalItems) return undefined;
  return job.failedItems >= job.totalItems ? "FAILED" : "COMPLETED";
}

const FINAL = new Set(["COMPLETED", "FAILED", "CANCELED"]);

/** The job just reached a final status and wants a webhook: announce it (once per status). */
async function announceEnd(record: DynamoDBRecord, job: JobImage): Promise<void> {
  const before = record.dynamodb?.OldImage;
  const previousStatus = before ? (unmarshall(before as Record<string, AttributeValue>) as JobImage).status : undefined;
  if (!job.webhookUrl || !FINAL.has(job.status) || !previousStatus || FINAL.has(previousStatus)) return;
  const queuedAt = new Date().toISOString();
  const deliveryId = deliveryIdFor(job.id, job.status);
  // Enqueued once: a replayed stream record finds the delivery recorded (and attempted) already.
  if (!(await markWebhookPending(job.orgId, job.id, { id: deliveryId, status: "pending", attempts: 0, queuedAt }))) {
    return;
  }
  const message: WebhookMessage = { orgId: job.orgId, jobId: job.id, deliveryId, queuedAt };
  await sendMessages(requireQueueUrl("webhook"), [JSON.stringify(message)]);
}

export async function finalizeJobs(records: DynamoDBRecord[]): Promise<DynamoDBBatchResponse> {
  for (const record of records) {
    const image = record.dynamodb?.NewImage;
    if (!image) continue;
    const job = unmarshall(image as Record<string, AttributeValue>) as JobImage;
    try {
      await announceEnd(record, job);
    } catch (error) {
      logger.error("Could not queue the job's webhook", { jobId: job.id, error: error as Error });
      return { batchItemFailures: [{ itemIdentifier: record.dynamodb?.SequenceNumber ?? "" }] };
    }
    const status = finishedStatus(job);
    if (!status) continue;
    try {
      const finished = await transitionJob(job.orgId, job.id, ["PROCESSING"], status, {
        completedAt: new Date().toISOString(),
        ...(status === "FAILED" ? { errorMessage: failureMessage(job) } : {}),
      });
      if (finished) logger.info("Job finished", { jobId: job.id, status });
    } catch (error) {
      logger.error("Could not finalize job", { jobId: job.id, error: error as Error });
      // Lambda resumes from this record; everything before it is done.
      return { batchItemFailures: [{ itemIdentifier: record.dynamodb?.SequenceNumber ?? "" }] };
    }
  }
  return { batchItemFailures: [] };
}
