/** The organization's webhook signing secret and each job's delivery state. */
import { ConditionalCheckFailedException } from "@aws-sdk/client-dynamodb";
import { GetCommand, PutCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { dynamo } from "../aws.ts";
import { config } from "../config.ts";
import { keys } from "../keys.ts";
import { generateWebhookSecret } from "../webhooks/signature.ts";

export interface WebhookSecret {
  secret: string;
  createdAt: string;
}

export async function getWebhookSecret(orgId: string): Promise<WebhookSecret | undefined> {
  const { Item } = await dynamo().send(
    new GetCommand({ TableName: config().tableName, Key: keys.webhookSecret(orgId), ConsistentRead: true }),
  );
  return Item ? { secret: String(Item.secret), createdAt: String(Item.createdAt) } : undefined;
}

/** The current secret, created on first use (concurrent first uses agree on one). */
export async function getOrCreateWebhookSecret(orgId: string): Promise<WebhookSecret> {
  const existing = await getWebhookSecret(orgId);
  if (existing) return existing;
  const created = { secret: generateWebhookSecret(), createdAt: new Date().toISOString() };
  try {
    await dynamo().send(
      new PutCommand({
        TableName: config().tableName,
        Item: { ...keys.webhookSecret(orgId), entity: "WebhookSecret", orgId, ...created },
        ConditionExpression: "attribute_not_exists(pk)",
      }),
    );
    return created;
  } catch (error) {
    if (!(error instanceof ConditionalCheckFailedException)) throw error;
    return (await getWebhookSecret(orgId)) as WebhookSecret;
  }
}

export async function rotateWebhookSecret(orgId: string): Promise<WebhookSecret> {
  const rotated = { secret: generateWebhookSecret(), createdAt: new Date().toISOString() };
  await dynamo().send(
    new PutCommand({
      TableName: config().tableName,
      Item: { ...keys.webhookSecret(orgId), entity: "WebhookSecret", orgId, ...rotated },
    }),
  );
  return rotated;
}

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

/**
 * Records a delivery as pending once; later calls for the same job change nothing. Answers
 * whether the delivery still needs its queue message: true when this call recorded it, or
 * when an earlier call recorded it but no attempt has been made yet (that caller may have
 * stopped before sending its message).
 */
export async function markWebhookPending(orgId: string, jobId: string, delivery: WebhookDelivery): Promise<boolean> {
  try {
    await dynamo().send(
      new UpdateCommand({
        TableName: config().tableName,
        Key: keys.job(orgId, jobId),
        UpdateExpression: "SET webhook = :delivery",
        ConditionExpression: "attribute_exists(pk) AND attribute_not_exists(webhook)",
        ExpressionAttributeValues: { ":delivery": delivery },
      }),
    );
    return true;
  } catch (error) {
    if (!(error instanceof ConditionalCheckFailedException)) throw error;
  }
  const { Item } = await dynamo().send(
    new GetCommand({
      TableName: config().tableName,
      Key: keys.job(orgId, jobId),
      ProjectionExpression: "webhook",
      ConsistentRead: true,
    }),
  );
  const existing = Item?.webhook as WebhookDelivery | undefined;
  return existing?.status === "pending" && existing.attempts === 0;
}

/** Saves the outcome of an attempt, unless the delivery already ended (a duplicate message). */
export async function saveWebhookAttempt(orgId: string, jobId: string, delivery: WebhookDelivery): Promise<boolean> {
  try {
    await dynamo().send(
      new UpdateCommand({
        TableName: config().tableName,
        Key: keys.job(orgId, jobId),
        UpdateExpression: "SET webhook = :delivery",
        ConditionExpression: "attribute_not_exists(webhook) OR webhook.#status = :pending",
        ExpressionAttributeNames: { "#status": "status" },
        ExpressionAttributeValues: { ":delivery": delivery, ":pending": "pending" },
      }),
    );
    return true;
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) return false;
    throw error;
  }
}
