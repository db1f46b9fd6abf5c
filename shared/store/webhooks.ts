/** The organization's webhook signing secret and each job's delivery state. */
import { keys } from "../keys.ts";
import type { WebhookDelivery } from "../schemas/job.ts";
import { generateWebhookSecret } from "../webhooks/signature.ts";
import { conditionHeld, table } from "./table.ts";

export interface WebhookSecret {
  secret: string;
  createdAt: string;
}

async function getWebhookSecret(orgId: string): Promise<WebhookSecret | undefined> {
  const item = await table.get(keys.webhookSecret(orgId), { ConsistentRead: true });
  return item ? { secret: String(item.secret), createdAt: String(item.createdAt) } : undefined;
}

/** The current secret, created on first use (concurrent first uses agree on one). */
export async function getOrCreateWebhookSecret(orgId: string): Promise<WebhookSecret> {
  const existing = await getWebhookSecret(orgId);
  if (existing) return existing;
  const created = { secret: generateWebhookSecret(), createdAt: new Date().toISOString() };
  const stored = await conditionHeld(
    table.put({
      Item: { ...keys.webhookSecret(orgId), entity: "WebhookSecret", orgId, ...created },
      ConditionExpression: "attribute_not_exists(pk)",
    }),
  );
  return stored ? created : ((await getWebhookSecret(orgId)) as WebhookSecret);
}

export async function rotateWebhookSecret(orgId: string): Promise<WebhookSecret> {
  const rotated = { secret: generateWebhookSecret(), createdAt: new Date().toISOString() };
  await table.put({ Item: { ...keys.webhookSecret(orgId), entity: "WebhookSecret", orgId, ...rotated } });
  return rotated;
}

/**
 * Records a delivery as pending once; later calls for the same job change nothing. Answers
 * whether the delivery still needs its queue message: true when this call recorded it, or
 * when an earlier call recorded it but no attempt has been made yet (that caller may have
 * stopped before sending its message).
 */
export async function markWebhookPending(orgId: string, jobId: string, delivery: WebhookDelivery): Promise<boolean> {
  const recorded = await conditionHeld(
    table.update({
      Key: keys.job(orgId, jobId),
      UpdateExpression: "SET webhook = :delivery",
      ConditionExpression: "attribute_exists(pk) AND attribute_not_exists(webhook)",
      ExpressionAttributeValues: { ":delivery": delivery },
    }),
  );
  if (recorded) return true;
  const item = await table.get(keys.job(orgId, jobId), { ProjectionExpression: "webhook", ConsistentRead: true });
  const existing = item?.webhook as WebhookDelivery | undefined;
  return existing?.status === "pending" && existing.attempts === 0;
}

/** Saves the outcome of an attempt, unless the delivery already ended (a duplicate message). */
export function saveWebhookAttempt(orgId: string, jobId: string, delivery: WebhookDelivery): Promise<boolean> {
  return conditionHeld(
    table.update({
      Key: keys.job(orgId, jobId),
      UpdateExpression: "SET webhook = :delivery",
      ConditionExpression: "attribute_not_exists(webhook) OR webhook.#status = :pending",
      ExpressionAttributeNames: { "#status": "status" },
      ExpressionAttributeValues: { ":delivery": delivery, ":pending": "pending" },
    }),
  );
}
