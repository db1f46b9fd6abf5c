/** Metric policies: CRUD (soft delete) and the active policies of an organization. */
import { randomUUID } from "node:crypto";
import { notFound, parseOrInvalid } from "../errors.ts";
import { keys } from "../keys.ts";
import { type CreatePolicyInput, createPolicySchema, type MetricPolicy } from "../schemas/policy.ts";
import { assertWebhookUrl } from "../webhooks/url-safety.ts";
import { resolveMetricRefs } from "./metrics.ts";
import { baseItems, type PageKey, queryAll, queryPage } from "./query.ts";
import { conditionHeld, table } from "./table.ts";

type Item = Record<string, unknown>;
const storageFields = new Set(["pk", "sk", "entity", "gsi1pk", "gsi1sk", "orgId"]);
const toPolicy = (item: Item): MetricPolicy =>
  Object.fromEntries(Object.entries(item).filter(([k]) => !storageFields.has(k))) as never;

async function validateReferences(orgId: string, policy: CreatePolicyInput): Promise<CreatePolicyInput> {
  if (policy.webhookUrl) await assertWebhookUrl(policy.webhookUrl);
  return { ...policy, metrics: await resolveMetricRefs(orgId, policy.metrics) };
}

/** Creates (`replace` false) or replaces a live, not deleted, policy. */
function putPolicy(orgId: string, policy: MetricPolicy, replace: boolean) {
  return table.put({
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
  });
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
  const item = await table.get(keys.policy(orgId, policyId));
  return item && item.status !== "DELETED" ? toPolicy(item) : undefined;
}

export const listPolicies = (orgId: string, options: { limit: number; after?: PageKey }) =>
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
  const merged = parseOrInvalid(createPolicySchema, { ...fields, ...patch }, { source: "body", what: "policy" });
  const policy: MetricPolicy = {
    ...(await validateReferences(orgId, merged)),
    id,
    createdAt,
    updatedAt: new Date().toISOString(),
  };
  if (!(await conditionHeld(putPolicy(orgId, policy, true)))) throw notFound("Metric policy", policyId);
  return policy;
}

/** Soft delete: the policy stops matching and disappears from the API; jobs keep its id. */
export async function deletePolicy(orgId: string, policyId: string): Promise<void> {
  const deleted = await conditionHeld(
    table.update({
      Key: keys.policy(orgId, policyId),
      UpdateExpression: "SET #status = :deleted, deletedAt = :now",
      ConditionExpression: "attribute_exists(pk) AND #status <> :deleted",
      ExpressionAttributeNames: { "#status": "status" },
      ExpressionAttributeValues: { ":deleted": "DELETED", ":now": new Date().toISOString() },
    }),
  );
  if (!deleted) throw notFound("Metric policy", policyId);
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
  return (await baseItems(items)).map(toPolicy);
}
