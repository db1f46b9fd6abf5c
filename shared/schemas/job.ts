import { z } from "zod";
import { createCallSchema } from "./call.ts";

/** Request limits, documented in docs/api.md. */
export const MAX_CALLS_PER_JOB = 10_000;
export const MAX_METRICS_PER_JOB = 20;
/**
 * The job item is rewritten by every counter increment, billed by its size: metadata is
 * bounded so a job item stays a few KB, not the 170 KB that 50 entries of 1 KB of
 * multibyte text would make.
 */
export const MAX_JOB_METADATA_BYTES = 8 * 1024;
/** Calls a job may carry inline; they are kept this long (for the job and its retries), then deleted. */
export const MAX_INLINE_CALLS_PER_JOB = 100;
export const INLINE_CALL_RETENTION_SECONDS = 7 * 86_400;
/** A job's expiry: at least the reconciler's interval (it ends expired jobs), at most a week. */
export const MIN_JOB_EXPIRY_SECONDS = 60;
export const MAX_JOB_EXPIRY_SECONDS = 7 * 86_400;

/** EXPIRED: the job was still running at its `expiresAt` (created with `expiresInSeconds`). */
export const jobStatuses = ["PENDING", "PROCESSING", "COMPLETED", "FAILED", "CANCELED", "EXPIRED"] as const;
export type JobStatus = (typeof jobStatuses)[number];
/** A job still running: its items may still be recorded, cancelled or expired. */
export const isRunningStatus = (status: unknown) => status === "PENDING" || status === "PROCESSING";
export const captureStatuses = ["SUCCESS", "NOT_APPLICABLE", "DATA_MISSING", "ERROR"] as const;
export type CaptureStatus = (typeof captureStatuses)[number];

const idSchema = z.string().trim().min(1).max(256);

/**
 * How a job's LLM metrics reach the model: `isolated`, one request per call × metric (the
 * transcript from the prompt cache after the first); `grouped`, one request per call for
 * its metrics that share a model (the transcript read once).
 */
export const judgeModes = ["isolated", "grouped"] as const;
export type JudgeMode = (typeof judgeModes)[number];
export const judgeModeSchema = z.enum(judgeModes);

/**
 * How LLM items reach the model: `realtime`, one Messages request at a time; `batch`, through
 * the Message Batches API, at half the price, usually within an hour and always within a day.
 */
export const llmModes = ["realtime", "batch"] as const;
export type LlmMode = (typeof llmModes)[number];
export const llmModeSchema = z.enum(llmModes);

export const createJobSchema = z
  .strictObject({
    callIds: z.array(idSchema).min(1).max(MAX_CALLS_PER_JOB).optional(),
    calls: z
      .array(createCallSchema)
      .min(1)
      .max(MAX_INLINE_CALLS_PER_JOB)
      .optional()
      .describe(
        "Calls sent with the job, as POST /v1/call takes them: judged like stored calls, kept only for the job (7 days), never listed nor matched by policies",
      ),
    metrics: z
      .array(
        z.strictObject({
          id: idSchema,
          /** A version of the definition to run (GET /v1/metric/definitions/{id}/versions); the latest by default. */
          version: z.number().int().min(1).optional(),
        }),
      )
      .min(1)
      .max(MAX_METRICS_PER_JOB),
    metadata: z
      .record(z.string().max(128), z.union([z.string().max(1024), z.number(), z.boolean()]))
      .refine((m) => Object.keys(m).length <= 50, "at most 50 metadata entries")
      .refine(
        (m) => Buffer.byteLength(JSON.stringify(m)) <= MAX_JOB_METADATA_BYTES,
        `at most ${MAX_JOB_METADATA_BYTES / 1024} KB of metadata (as JSON, UTF-8)`,
      )
      .optional(),
    /** Receives a signed POST when the job ends (https; checked against internal addresses). */
    webhookUrl: z.url().max(2048).optional(),
    judgeMode: judgeModeSchema.optional(),
    llmMode: llmModeSchema.optional(),
    /** Stops the job's model calls once its estimated cost reaches this (USD); at most the organization's maxJobCostUsd. */
    maxCostUsd: z.number().positive().max(1_000_000).optional(),
    webhookProgress: z
      .boolean()
      .optional()
      .describe(
        "true: besides the completion event, a collection_job.progress event each time the job passes a tenth of its items (best effort: one attempt)",
      ),
    webhookSigning: z
      .enum(["organization", "job"])
      .optional()
      .describe(
        "job: the webhook is signed with a secret of this job's own, in the creation answer only (webhookSecret); organization (default): with the organization's (GET /v1/webhook-secret)",
      ),
    expiresInSeconds: z
      .number()
      .int()
      .min(MIN_JOB_EXPIRY_SECONDS)
      .max(MAX_JOB_EXPIRY_SECONDS)
      .optional()
      .describe(
        "A job still running this many seconds after its creation ends EXPIRED (within a minute of it): what it recorded stays, its remaining items are not run",
      ),
  })
  .superRefine((job, context) => {
    if (!job.callIds && !job.calls) {
      context.addIssue({
        code: "custom",
        path: ["callIds"],
        message: "send callIds, calls (inline transcripts), or both",
      });
    }
    if (job.webhookProgress && !job.webhookUrl) {
      context.addIssue({ code: "custom", path: ["webhookProgress"], message: "needs a webhookUrl to send events to" });
    }
    if (job.webhookSigning === "job" && !job.webhookUrl) {
      context.addIssue({ code: "custom", path: ["webhookSigning"], message: "needs a webhookUrl to sign for" });
    }
  });
export type CreateJobInput = z.infer<typeof createJobSchema>;

export interface FrozenMetric {
  id: string;
  version: number;
  slug: string;
  name: string;
}

export interface CollectionJob {
  id: string;
  status: JobStatus;
  triggeredBy: "API" | "METRIC_POLICY" | "SCHEDULE" | "RETRY";
  totalItems: number;
  completedItems: number;
  failedItems: number;
  callCount: number;
  metrics: FrozenMetric[];
  judgeMode: JudgeMode;
  llmMode: LlmMode;
  /** Items of a batch-mode job handed to the Message Batches API whose results are not in yet. */
  itemsWaitingOnProvider?: number;
  startedAt?: string;
  completedAt?: string;
  canceledAt?: string;
  /** When a job created with `expiresInSeconds` ends EXPIRED if still running. */
  expiresAt?: string;
  expiredAt?: string;
  /** Items a CANCELED or EXPIRED job never ran: total − completed − failed (its counters are frozen). */
  notRunItems?: number;
  errorMessage?: string;
  webhookUrl?: string;
  /** Progress events go to its webhookUrl at each tenth of its items. */
  webhookProgress?: true;
  /** "job": its webhook is signed with a secret of its own (shown only when it was created). */
  webhookSigning?: "job";
  /** Delivery of the completion webhook, when the job has a webhookUrl. */
  webhook?: WebhookDelivery;
  /** Summed over the job's recorded values; present once an LLM-judged item is recorded. */
  usage?: TokenUsage;
  estimatedCostUsd?: number;
  /** The cost cap its model calls stop at. */
  maxCostUsd?: number;
  policyIds: string[];
  metadata: Record<string, string | number | boolean>;
  createdAt: string;
  updatedAt: string;
}

/** A work-queue message: one call x one metric of one job. */
export const workItemSchema = z.object({
  orgId: z.string().min(1),
  jobId: z.string().min(1),
  callId: z.string().min(1),
  metricId: z.string().min(1),
  metricVersion: z.number().int().min(1),
  /**
   * Work of a job no one is waiting on (a backfill's or a policy's): a fair-queue group of its
   * own and the limiter's back seat, so the organization's API jobs go ahead of it.
   */
  bulk: z.literal(true).optional(),
  /**
   * Retry state, carried when the evaluator re-sends an item instead of letting SQS
   * redeliver it, so receive counts measure only crashed deliveries. Failed evaluations
   * so far (the poison budget):
   */
  failedAttempts: z.number().int().min(0).optional(),
  /** Rate-limit and overload answers (429/529) so far, and when the first came: never counted as failures. */
  throttledAttempts: z.number().int().min(0).optional(),
  throttledSince: z.iso.datetime().optional(),
  /** The item's turn in its tenant's queue for the LLM limiter (epoch ms), when it was deferred for one. */
  turnAt: z.number().int().min(0).optional(),
  /** Why the last attempt failed: what the dead-letter consumer reports if the item ends there. */
  lastError: z.string().max(500).optional(),
});
export type WorkItem = z.infer<typeof workItemSchema>;

/** A dispatch-queue message: one page of a job's calls to expand into work items. */
export const dispatchMessageSchema = z.object({
  orgId: z.string().min(1),
  jobId: z.string().min(1),
  page: z.number().int().min(0),
});
export type DispatchMessage = z.infer<typeof dispatchMessageSchema>;

export interface SegmentRef {
  id: string;
  text: string;
  startOffsetMs: number;
  endOffsetMs: number;
}

export interface MetricValue {
  jobId: string;
  callId: string;
  metricDefinitionId: string;
  metricVersion: number;
  captureStatus: CaptureStatus;
  computedAt: string;
  context: "CALL" | "SEGMENT" | "SEGMENT_RANGE";
  value?: number | string | boolean | string[];
  valueReasoning?: string;
  confidence?: number;
  errorMessage?: string;
  segment?: SegmentRef;
  fromSegment?: SegmentRef;
  toSegment?: SegmentRef;
  policyIds?: string[];
  /** LLM_JUDGE only: the model that judged, its token usage and the estimated cost in USD. */
  model?: string;
  usage?: TokenUsage;
  estimatedCostUsd?: number;
  /** A person's verdict (shared/store/reviews.ts); `value` stays the judge's. */
  reviewedValue?: number | string | boolean | string[];
  reviewedBy?: string;
  reviewedAt?: string;
  reviewNote?: string;
}

/** Tokens an evaluation used, as the Messages API reports them. */
export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
  cacheCreationInputTokens: number;
  cacheReadInputTokens: number;
  /** Of the output tokens, those the model spent thinking (billed as output). */
  thinkingTokens: number;
}

/** The state of a job's webhook delivery, kept on the job. */
export interface WebhookDelivery {
  id: string;
  status: "pending" | "delivered" | "failed";
  attempts: number;
  queuedAt: string;
  lastAttemptAt?: string;
  lastResponseCode?: number;
  lastError?: string;
  deliveredAt?: string;
}
