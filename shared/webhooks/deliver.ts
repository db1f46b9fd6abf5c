/**
 * Completion webhooks. The finalizer announces each job that reached a final status with a
 * `webhookUrl` (one message, deterministic delivery id); this worker POSTs the signed event,
 * and on a non-2xx answer or a timeout puts the message back with a growing delay
 * (ChangeMessageVisibility, no sleeping) until it succeeds or a day has passed. The id is
 * the same on every attempt, so receivers can drop duplicates.
 *
 * The deliveries of a batch run concurrently, each under its own deadline that covers the
 * DNS lookup, the connection and the answer: one tenant's hanging endpoint delays nobody else's.
 */
import { ChangeMessageVisibilityCommand } from "@aws-sdk/client-sqs";
import type { SQSRecord } from "aws-lambda";
import { z } from "zod";
import { sqs } from "../aws.ts";
import { config, requireQueueUrl } from "../config.ts";
import { eachMessage } from "../consumers.ts";
import { logger } from "../logger.ts";
import { type CollectionJob, isRunningStatus, type WebhookDelivery } from "../schemas/job.ts";
import { getJobItem, toCollectionJob } from "../store/jobs.ts";
import { getOrCreateWebhookSecret, saveWebhookAttempt } from "../store/webhooks.ts";
import { guardedPost, type WebhookFetch } from "./guarded-post.ts";
import { jobResults } from "./results.ts";
import { signWebhook } from "./signature.ts";
import { webhookUrlProblem } from "./url-safety.ts";

export const webhookMessageSchema = z.object({
  orgId: z.string().min(1),
  jobId: z.string().min(1),
  deliveryId: z.string().min(1),
  queuedAt: z.iso.datetime(),
  /** A progress event (its tenth, in percent): one attempt, and none once the job has ended. */
  progressPercent: z.number().int().min(1).max(99).optional(),
});
export type WebhookMessage = z.infer<typeof webhookMessageSchema>;

export const deliveryIdFor = (jobId: string, status: string) => `whd_${jobId}_${status.toLowerCase()}`;

const MAX_DELAY_SECONDS = 3600;
/** Deliveries in flight per invocation: a whole batch (10) at once. */
const DELIVERY_CONCURRENCY = 10;

export interface WebhookDeps {
  fetch: WebhookFetch;
  /** Puts a message back on the queue for `seconds`. */
  delay: (receiptHandle: string, seconds: number) => Promise<void>;
  now: () => Date;
  /** The host's addresses for the URL check; the system resolver when absent. */
  resolveHost?: (host: string) => Promise<string[]>;
}

export const defaultWebhookDeps: WebhookDeps = {
  // Connects only to addresses that pass the SSRF check (no second, unchecked DNS answer).
  fetch: (url, init) => guardedPost({ allowLoopback: config().webhookAllowLoopback })(url, init),
  delay: async (receiptHandle, seconds) => {
    await sqs().send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: requireQueueUrl("webhook"),
        ReceiptHandle: receiptHandle,
        VisibilityTimeout: seconds,
      }),
    );
  },
  now: () => new Date(),
};

/** Jittered exponential backoff, capped at an hour. */
function webhookRetryDelay(attempts: number): number {
  const base = config().webhookRetryBaseSeconds * 2 ** Math.max(0, attempts - 1);
  return Math.round(Math.min(MAX_DELAY_SECONDS, base * (0.75 + Math.random() / 2)));
}

type Outcome = "done" | "retry";

/** `work`, or the signal's reason once it aborts (the work itself may not be abortable: DNS). */
function beforeDeadline<T>(work: Promise<T>, deadline: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(deadline.reason);
    if (deadline.aborted) return onAbort();
    deadline.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => deadline.removeEventListener("abort", onAbort));
  });
}

/** What one signed POST came to: the answer's status, or why there was none. */
interface PostOutcome {
  status?: number;
  /** The URL is not allowed (now): never retried. */
  problem?: string;
  error?: string;
}

async function postSigned(
  url: string,
  deliveryId: string,
  body: string,
  secret: string,
  deps: WebhookDeps,
): Promise<PostOutcome> {
  const timestamp = Math.floor(deps.now().getTime() / 1000);
  const deadline = AbortSignal.timeout(config().webhookTimeoutMs);
  try {
    const policy = { allowLoopback: config().webhookAllowLoopback };
    // Checked at delivery too: DNS may now point somewhere it did not when the URL was accepted.
    const problem = await beforeDeadline(webhookUrlProblem(url, policy, deps.resolveHost), deadline);
    if (problem) return { problem };
    const response = await deps.fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "user-agent": "metric-collection-webhooks/1",
        "x-webhook-id": deliveryId,
        "x-webhook-timestamp": String(timestamp),
        "x-webhook-signature": signWebhook(secret, deliveryId, timestamp, body),
      },
      body,
      // Never follow redirects: they could lead to an address the URL check refused.
      redirect: "manual",
      signal: deadline,
    });
    await response.body?.cancel().catch(() => {});
    return { status: response.status };
  } catch (error) {
    return { error: deadline.aborted ? "timed out" : (error as Error).message };
  }
}

const delivered = (outcome: PostOutcome) =>
  outcome.status !== undefined && outcome.status >= 200 && outcome.status < 300;

async function deliver(message: WebhookMessage, record: SQSRecord, deps: WebhookDeps): Promise<Outcome> {
  // Consistent: the job just reached its final status, and the event must carry it.
  const item = await getJobItem(message.orgId, message.jobId, true);
  const job = item ? toCollectionJob(item) : undefined;
  if (!job?.webhookUrl) return "done";
  // A job that asked for its own secret is signed with it; others with the organization's.
  const secret = async () =>
    typeof item?.webhookSecret === "string"
      ? item.webhookSecret
      : (await getOrCreateWebhookSecret(message.orgId)).secret;
  if (message.progressPercent !== undefined) {
    return deliverProgress(message, message.progressPercent, job, await secret(), deps);
  }
  const previous = job.webhook as WebhookDelivery | undefined;
  if (previous && previous.id === message.deliveryId && previous.status !== "pending") return "done";

  const now = deps.now();
  const delivery: WebhookDelivery = {
    id: message.deliveryId,
    status: "pending",
    attempts: (previous?.id === message.deliveryId ? previous.attempts : 0) + 1,
    queuedAt: message.queuedAt,
    lastAttemptAt: now.toISOString(),
  };
  const { webhook: _state, webhookUrl: url, ...data } = job;
  const results = await jobResults(message.orgId, job);
  const body = JSON.stringify({ type: `collection_job.${job.status.toLowerCase()}`, data, results });
  const outcome = await postSigned(url, message.deliveryId, body, await secret(), deps);
  if (outcome.status !== undefined) delivery.lastResponseCode = outcome.status;
  if (delivered(outcome)) {
    await saveWebhookAttempt(message.orgId, message.jobId, {
      ...delivery,
      status: "delivered",
      deliveredAt: deps.now().toISOString(),
    });
    return "done";
  }
  if (outcome.problem) {
    await saveWebhookAttempt(message.orgId, message.jobId, {
      ...delivery,
      status: "failed",
      lastError: `URL ${outcome.problem}`,
    });
    return "done";
  }
  delivery.lastError = outcome.error ?? `answered ${outcome.status}`;

  const age = now.getTime() - Date.parse(message.queuedAt);
  if (age >= config().webhookRetryHours * 3_600_000) {
    await saveWebhookAttempt(message.orgId, message.jobId, { ...delivery, status: "failed" });
    return "done";
  }
  await saveWebhookAttempt(message.orgId, message.jobId, delivery);
  await deps.delay(record.receiptHandle, webhookRetryDelay(delivery.attempts));
  return "retry";
}

/**
 * A progress event: one attempt, recorded nowhere (the job's `webhook` tracks its completion
 * event). None once the job has ended: its completion event says more.
 */
async function deliverProgress(
  message: WebhookMessage,
  percent: number,
  job: CollectionJob,
  secret: string,
  deps: WebhookDeps,
): Promise<Outcome> {
  if (!isRunningStatus(job.status)) return "done";
  const { webhook: _state, webhookUrl: url, ...data } = job;
  const body = JSON.stringify({ type: "collection_job.progress", data, progress: { percent } });
  const outcome = await postSigned(url as string, message.deliveryId, body, secret, deps);
  if (!delivered(outcome)) {
    logger.info("Progress event not delivered; progress events are not retried", {
      jobId: job.id,
      percent,
      ...outcome,
    });
  }
  return "done";
}

/** Delivers each message of a batch, several at a time: one slow endpoint does not hold up the others. */
export const deliverWebhooks = (deps: WebhookDeps) =>
  eachMessage<WebhookMessage>(({ body, record }) => deliver(body, record, deps), {
    concurrency: DELIVERY_CONCURRENCY,
    failure: "Webhook delivery failed; will retry",
  });
