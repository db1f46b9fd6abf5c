/**
 * Sending to SQS in batches of ten, several requests in flight, re-sending only the
 * entries a batch reported as failed.
 */
import { SendMessageBatchCommand } from "@aws-sdk/client-sqs";
import { sqs } from "../aws.ts";
import { chunked, mapLimit, sleep } from "../concurrency.ts";
import type { WorkItem } from "../schemas/job.ts";

const ENTRIES_PER_BATCH = 10;
/** Enough overlap for a dispatcher to enqueue a 5,000-item page in a second or two. */
const REQUESTS_IN_FLIGHT = 50;
const MAX_ATTEMPTS = 6;

/**
 * A message body, or a body with a delay (at most 900 s, SQS's limit) and a message group
 * (the tenant of a fair queue).
 */
export type OutgoingMessage = string | { body: string; delaySeconds?: number; groupId?: string };

const MAX_DELAY_SECONDS = 900;

function entryOf(message: OutgoingMessage, index: number) {
  if (typeof message === "string") return { Id: String(index), MessageBody: message };
  const delay = Math.min(MAX_DELAY_SECONDS, Math.max(0, Math.round(message.delaySeconds ?? 0)));
  return {
    Id: String(index),
    MessageBody: message.body,
    ...(delay > 0 ? { DelaySeconds: delay } : {}),
    ...(message.groupId ? { MessageGroupId: message.groupId } : {}),
  };
}

/**
 * The fair work queue's group of an item: its organization, so one organization's backlog
 * does not hold back another's work; bulk work (backfills, policies) a group of its own, so
 * it does not hold back the organization's API jobs either.
 */
export const workGroupOf = (item: Pick<WorkItem, "orgId" | "bulk">): string =>
  item.bulk ? `${item.orgId}:bulk` : item.orgId;

/**
 * A work item as a message of the work queue. An item sent back for its limiter turn is a
 * group of its own: the fair queue hands it out before its tenant's fresh backlog, which
 * would otherwise hold it past its turn while the evaluators take turns for that backlog.
 */
export const workMessage = (item: WorkItem, delaySeconds = 0): OutgoingMessage => ({
  body: JSON.stringify(item),
  delaySeconds,
  groupId: item.turnAt === undefined ? workGroupOf(item) : `${workGroupOf(item)}:turn`,
});

async function sendBatch(queueUrl: string, messages: OutgoingMessage[]): Promise<void> {
  let pending = messages.map(entryOf);
  for (let attempt = 1; pending.length > 0; attempt++) {
    if (attempt > MAX_ATTEMPTS) {
      throw new Error(`SendMessageBatch still failing for ${pending.length} entries after ${MAX_ATTEMPTS} attempts`);
    }
    if (attempt > 1) await sleep(Math.min(2000, 50 * 2 ** attempt) * (0.5 + Math.random() / 2));
    const result = await sqs().send(new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: pending }));
    const failedIds = new Set((result.Failed ?? []).map((failure) => failure.Id));
    pending = pending.filter((entry) => failedIds.has(entry.Id));
  }
}

/** Sends messages in order-preserving batches; items placed adjacently stay in the same or next batch. */
export async function sendMessages(queueUrl: string, messages: OutgoingMessage[]): Promise<void> {
  await mapLimit(chunked(messages, ENTRIES_PER_BATCH), REQUESTS_IN_FLIGHT, (batch) => sendBatch(queueUrl, batch));
}
