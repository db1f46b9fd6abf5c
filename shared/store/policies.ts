/** Metric policies: CRUD (soft delete) and the active policies of an organization. */
import { randomUUID } from "node:crypto";
import { ConditionalCheckFailedException } from "@aws-sdk/client-dynamodb";
import { GetCommand, PutCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { dynamo } from "../aws.ts";
import { config } from "../config.ts";
import { badRequest, notFound } from "../http/errors.ts";
import { keys } from "../keys.ts";
import { assertWebhookUrl } from "../pipeline/create-job.ts";
import { type CreatePolicyInput, createPolicySchema, type MetricPolicy } from "../schemas/policy.ts";
import { getMetric } from "./metrics.ts";
import { queryAll, queryPage } from "./query.ts";

type Item = Record<string, unknown>;
const storageFields = new Set(["pk", "sk", "entity", "gsi1pk", "gsi1sk", "orgId"]);
const toPolicy = (item: Item): MetricPolicy =>
  Object.fromEntries(Object.entries(item).filter(([k]) => !storageFields.has(k))) as never;

async function validateReferences(orgId: string, policy: CreatePolicyInput): Promise<CreatePolicyInput> {
  const resolved = await Promise.all(policy.metrics.map((m) => getMetric(orgId, m.id)));
  const unknown = policy.metrics.filter((_, index) => !resolved[index]).map((m) => m.id);
  if (unknown.length > 0) throw badRequest(`Unknown metric ids: ${unknown.join(", ")}`, { unknownMetricIds: unknown });
  if (policy.webhookUrl) await assertWebhookUrl(policy.webhookUrl);
  // Stored by id, so renaming a slug later does not detach the policy.
  return { ...policy, metrics: [...new Set(resolved.map((m) => m?.id as string))].map((id) => ({ id })) };
}

/** Creates (`replace` false) or replaces a live, not deleted, policy. */
function putPolicy(orgId: string, policy: MetricPolicy, replace: boolean) {
  return dynamo().send(
    new PutCommand({
      TableName: config().tableName,
      Item: {
        ...keys.policy(orgId, policy.id),
        entity: "Policy",
        gsi1pk: keys.policyList(orgId),
        gsi1sk: keys.listSortKey(policy.createdAt, policy.id),
        orgId,
        ...policy,
      },
      ...(replace
        ? {
            ConditionExpression: "attribute_exists(pk) AND #status <> :deleted",
            ExpressionAttributeNames: { "#status": "status" },
            ExpressionAttributeValues: { ":deleted": "DELETED" },
          }
        : { ConditionExpression: "attribute_not_exists(pk)" }),
    }),
  );
}

export async function createPolicy(orgId: string, input: CreatePolicyInput): Promise<MetricPolicy> {
  const now = new Date().toISOString();
  const policy: MetricPolicy = {
    ...(await validateReferences(orgId, input)),
    id: randomUUID(),
    createdAt: now,
    updatedAt: now,
  };
  await putPolicy(orgId, policy, false);
  return policy;
}

export async function getPolicy(orgId: string, policyId: string): Promise<MetricPolicy | undefined> {
  const { Item } = await dynamo().send(
    new GetCommand({ TableName: config().tableName, Key: keys.policy(orgId, policyId) }),
  );
  return Item && Item.status !== "DELETED" ? toPolicy(Item) : undefined;
}

export const listPolicies = (orgId: string, options: { limit: number; after?: string }) =>
  queryPage(
    {
      partition: ["gsi1pk", keys.policyList(orgId)],
      sortKeyName: "gsi1sk",
      indexName: "gsi1",
      newestFirst: true,
      limit: options.limit,
      after: options.after,
      filter: {
        FilterExpression: "#status <> :deleted",
        ExpressionAttributeNames: { "#status": "status" },
        ExpressionAttributeValues: { ":deleted": "DELETED" },
      },
    },
    toPolicy,
  );

export async function updatePolicy(orgId: string, policyId: string, patch: Partial<CreatePolicyInput>) {
  const current = await getPolicy(orgId, policyId);
  if (!current) throw notFound("Metric policy", policyId);
  const { id, createdAt, updatedAt: _updatedAt, ...fields } = current;
  const merged = createPolicySchema.safeParse({ ...fields, ...patch });
  if (!merged.success) {
    const details = merged.error.issues.map((i) => ({
      field: ["body", ...i.path.map(String)].join("."),
      message: i.message,
    }));
    throw badRequest(`Invalid policy: ${details[0]?.field}: ${details[0]?.message}`, details);
  }
  const policy: MetricPolicy = {
    ...(await validateReferences(orgId, merged.data)),
    id,
    createdAt,
    updatedAt: new Date().toISOString(),
  };
  try {
    await putPolicy(orgId, policy, true);
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) throw notFound("Metric policy", policyId);
    throw error;
  }
  return policy;
}

/** Soft delete: the policy stops matching and disappears from the API; jobs keep its id. */
export async function deletePolicy(orgId: string, policyId: string): Promise<void> {
  try {
    await dynamo().send(
      new UpdateCommand({
        TableName: config().tableName,
        Key: keys.policy(orgId, policyId),
        UpdateExpression: "SET #status = :deleted, deletedAt = :now",
        ConditionExpression: "attribute_exists(pk) AND #status <> :deleted",
        ExpressionAttributeNames: { "#status": "status" },
        ExpressionAttributeValues: { ":deleted": "DELETED", ":now": new Date().toISOString() },
      }),
    );
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) throw notFound("Metric policy", policyId);
    throw error;
  }
}

/** The organization's ACTIVE policies: one query on its (small) policy list, no scan. */
export async function activePolicies(orgId: string): Promise<MetricPolicy[]> {
  const items = await queryAll({
    IndexName: "gsi1",
    KeyConditionExpression: "gsi1pk = :list",
    FilterExpression: "#status = :active",
    ExpressionAttributeNames: { "#status": "status" },
    ExpressionAttributeValues: { ":list": keys.policyList(orgId), ":active": "ACTIVE" },
  });
  return items.map(toPolicy);
}
