/**
 * Finalization (DESIGN §3.5), fed by the table's stream: a PROCESSING job whose counters
 * reached its total is conditionally moved to COMPLETED (or FAILED when every item
 * failed). The condition makes replays and concurrent finalizers harmless.
 */
import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import { unmarshall } from "@aws-sdk/util-dynamodb";
import type { DynamoDBBatchResponse, DynamoDBRecord } from "aws-lambda";
import { logger } from "../logger.ts";
import { transitionJob } from "../store/jobs.ts";

interface JobImage {
  entity?: string;
  orgId: string;
  id: string;
  status: string;
  totalItems: number;
  completedItems: number;
  failedItems: number;
  llmBlockedReason?: string;
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

export async function finalizeJobs(records: DynamoDBRecord[]): Promise<DynamoDBBatchResponse> {
  for (const record of records) {
    const image = record.dynamodb?.NewImage;
    if (!image) continue;
    const job = unmarshall(image as Record<string, AttributeValue>) as JobImage;
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
