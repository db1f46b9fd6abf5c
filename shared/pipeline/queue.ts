/**
 * Sending to SQS in batches of ten, several requests in flight, re-sending only the
 * entries a batch reported as failed.
 */
import { SendMessageBatchCommand } from "@aws-sdk/client-sqs";
import { sqs } from "../aws.ts";
import { chunked, mapLimit, sleep } from "../concurrency.ts";

const ENTRIES_PER_BATCH = 10;
/** Enough overlap for a dispatcher to enqueue a 5,000-item page in a second or two. */
const REQUESTS_IN_FLIGHT = 50;
const MAX_ATTEMPTS = 6;

/** A message body, or a body to deliver only after a delay (at most 900 s, SQS's limit). */
export type OutgoingMessage = string | { body: string; delaySeconds: number };

const MAX_DELAY_SECONDS = 900;

function entryOf(message: OutgoingMessage, index: number) {
  if (typeof message === "string") return { Id: String(index), MessageBody: message };
  const delay = Math.min(MAX_DELAY_SECONDS, Math.max(0, Math.round(message.delaySeconds)));
  return { Id: String(index), MessageBody: message.body, ...(delay > 0 ? { DelaySeconds: delay } : {}) };
}

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
