/**
 * Integrations, managed by an organization's admins. An integration is found by its id alone
 * (its webhook URL names no organization), so its item is keyed by the id, which is random
 * and unguessable, and names its organization: every read through the API checks it, and an
 * integration of another organization is "not found". Secrets are stored in the table
 * (encrypted at rest, under the customer's key where the stack has one) and never answered.
 */
import { randomBytes } from "node:crypto";
import { invalid, notFound } from "../errors.ts";
import { keys } from "../keys.ts";
import {
  type CreateIntegrationInput,
  DEFAULT_SECRET_GRACE_SECONDS,
  type Integration,
  type IntegrationProvider,
  type UpdateIntegrationInput,
} from "../schemas/integration.ts";
import { type PageKey, queryPage } from "./query.ts";
import { conditionHeld, ifConditionHeld, table } from "./table.ts";

type Item = Record<string, unknown>;

const newIntegrationId = () => `int_${randomBytes(18).toString("base64url")}`;

export const integrationWebhookPath = (provider: IntegrationProvider, integrationId: string) =>
  `/v1/integrations/${provider}/${integrationId}/events`;

const hidden = new Set(["pk", "sk", "entity", "gsi1pk", "gsi1sk", "orgId", "secret", "previousSecret"]);

/** Whether the integration's replaced secret still verifies deliveries (its grace period lasts). */
const previousSecretInGrace = (item: Item, now = new Date()) =>
  typeof item.previousSecret === "string" && String(item.previousSecretValidUntil ?? "") > now.toISOString();

function toIntegration(item: Item): Integration {
  const fields = Object.fromEntries(Object.entries(item).filter(([name]) => !hidden.has(name))) as Omit<
    Integration,
    "webhookUrl"
  >;
  // A replaced secret past its grace no longer verifies: not worth showing.
  const { previousSecretValidUntil, ...rest } = fields;
  return {
    ...rest,
    ...(previousSecretInGrace(item) ? { previousSecretValidUntil } : {}),
    webhookUrl: integrationWebhookPath(fields.provider, fields.id),
  };
}

export async function createIntegration(orgId: string, input: CreateIntegrationInput): Promise<Integration> {
  const now = new Date().toISOString();
  const id = newIntegrationId();
  const item = {
    ...keys.integration(id),
    entity: "Integration",
    gsi1pk: keys.integrationList(orgId),
    gsi1sk: keys.listSortKey(now, id),
    orgId,
    id,
    ...input,
    createdAt: now,
    updatedAt: now,
  };
  await table.put({ Item: item, ConditionExpression: "attribute_not_exists(pk)" });
  return toIntegration(item);
}

/** The stored item of the organization's integration (with its secrets), or undefined. */
async function integrationItem(orgId: string, integrationId: string): Promise<Item | undefined> {
  const item = await table.get(keys.integration(integrationId));
  return item?.orgId === orgId ? item : undefined;
}

export async function getIntegration(orgId: string, integrationId: string): Promise<Integration> {
  const item = await integrationItem(orgId, integrationId);
  if (!item) throw notFound("Integration", integrationId);
  return toIntegration(item);
}

export const listIntegrations = (orgId: string, options: { limit: number; after?: PageKey }) =>
  queryPage(
    {
      partition: ["gsi1pk", keys.integrationList(orgId)],
      sortKeyName: "gsi1sk",
      indexName: "gsi1",
      newestFirst: true,
      limit: options.limit,
      after: options.after,
    },
    toIntegration,
  );

/** Changes what the patch names; a new secret keeps the old one valid for its grace period. */
export async function updateIntegration(
  orgId: string,
  integrationId: string,
  { secretGraceSeconds, ...patch }: UpdateIntegrationInput,
): Promise<Integration> {
  const current = await integrationItem(orgId, integrationId);
  if (!current) throw notFound("Integration", integrationId);
  if (patch.vapiAuth !== undefined && current.provider !== "vapi") {
    throw invalid("Only Vapi integrations take vapiAuth", [
      { field: "body.vapiAuth", message: "only Vapi integrations take vapiAuth" },
    ]);
  }
  const now = new Date();
  const rotation =
    patch.secret !== undefined && patch.secret !== current.secret
      ? {
          previousSecret: current.secret,
          previousSecretValidUntil: new Date(
            now.getTime() + (secretGraceSeconds ?? DEFAULT_SECRET_GRACE_SECONDS) * 1000,
          ).toISOString(),
          secretRotatedAt: now.toISOString(),
        }
      : {};
  const changes: Item = { ...patch, ...rotation, updatedAt: now.toISOString() };
  const names = Object.keys(changes);
  const updated = await ifConditionHeld(
    table.update({
      Key: keys.integration(integrationId),
      UpdateExpression: `SET ${names.map((_, index) => `#f${index} = :f${index}`).join(", ")}`,
      ConditionExpression: "orgId = :org",
      ExpressionAttributeNames: Object.fromEntries(names.map((name, index) => [`#f${index}`, name])),
      ExpressionAttributeValues: {
        ":org": orgId,
        ...Object.fromEntries(names.map((name, index) => [`:f${index}`, changes[name]])),
      },
      ReturnValues: "ALL_NEW",
    }),
  );
  if (!updated) throw notFound("Integration", integrationId);
  return toIntegration(updated);
}

export async function deleteIntegration(orgId: string, integrationId: string): Promise<{ id: string; deleted: true }> {
  const deleted = await conditionHeld(
    table.delete({
      Key: keys.integration(integrationId),
      ConditionExpression: "orgId = :org",
      ExpressionAttributeValues: { ":org": orgId },
    }),
  );
  if (!deleted) throw notFound("Integration", integrationId);
  return { id: integrationId, deleted: true };
}

/** What verifying and mapping a delivery needs of its integration (its secrets included). */
export interface DeliveryTarget {
  id: string;
  orgId: string;
  provider: IntegrationProvider;
  /** The current secret, then the previous one while its grace period lasts. */
  secrets: string[];
  vapiAuth?: Integration["vapiAuth"];
  agentMapping?: Record<string, string>;
  properties?: Record<string, string>;
}

/** The integration a platform posts to, found by its id alone; undefined when unknown. */
export async function deliveryTarget(integrationId: string, now = new Date()): Promise<DeliveryTarget | undefined> {
  const item = await table.get(keys.integration(integrationId));
  if (!item) return undefined;
  return {
    id: String(item.id),
    orgId: String(item.orgId),
    provider: item.provider as IntegrationProvider,
    secrets: [String(item.secret), ...(previousSecretInGrace(item, now) ? [String(item.previousSecret)] : [])],
    ...(item.vapiAuth ? { vapiAuth: item.vapiAuth as Integration["vapiAuth"] } : {}),
    ...(item.agentMapping ? { agentMapping: item.agentMapping as Record<string, string> } : {}),
    ...(item.properties ? { properties: item.properties as Record<string, string> } : {}),
  };
}

/** Longest error kept on an integration: enough to see what went wrong, never the payload. */
const MAX_DELIVERY_ERROR_CHARS = 500;

/** Counts a delivery on its integration: received, or failed with why (the last error is kept). */
export async function recordDelivery(integrationId: string, failure?: string): Promise<void> {
  const now = new Date().toISOString();
  await ifConditionHeld(
    table.update({
      Key: keys.integration(integrationId),
      UpdateExpression: failure
        ? "ADD failedCount :one SET lastFailedAt = :now, lastError = :error"
        : "ADD receivedCount :one SET lastReceivedAt = :now",
      // Deleted meanwhile: nothing to count on.
      ConditionExpression: "attribute_exists(pk)",
      ExpressionAttributeValues: {
        ":one": 1,
        ":now": now,
        ...(failure ? { ":error": failure.slice(0, MAX_DELIVERY_ERROR_CHARS) } : {}),
      },
    }),
  );
}
