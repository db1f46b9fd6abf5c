/**
 * An organization's API keys, managed by its admins: created with a secret shown once (only
 * its hash is stored), listed newest first without secrets, revoked (kept, marked, refused
 * from then on). A key is named by its id, the non-secret start of its hash.
 */
import { forgetCachedApiKey, generateApiKey, storeApiKey } from "../auth.ts";
import { conflict, notFound } from "../errors.ts";
import { keys } from "../keys.ts";
import type { CreateApiKeyInput } from "../schemas/api-key.ts";
import type { Role } from "../schemas/role.ts";
import { type PageKey, queryItems, queryPage } from "./query.ts";
import { table } from "./table.ts";

type Item = Record<string, unknown>;

export interface ApiKeySummary {
  id: string;
  name: string;
  role: Role;
  createdAt: string;
  createdBy?: string;
  revokedAt?: string;
  revokedBy?: string;
}

const toApiKey = (item: Item): ApiKeySummary => ({
  id: String(item.keyId),
  name: String(item.name),
  role: item.role as Role,
  createdAt: String(item.createdAt),
  ...(item.createdBy ? { createdBy: String(item.createdBy) } : {}),
  ...(item.revokedAt ? { revokedAt: String(item.revokedAt) } : {}),
  ...(item.revokedBy ? { revokedBy: String(item.revokedBy) } : {}),
});

export async function createOrgApiKey(orgId: string, input: CreateApiKeyInput, createdBy: string) {
  const apiKey = generateApiKey();
  const { keyId, createdAt } = await storeApiKey({ apiKey, orgId, role: input.role, name: input.name, createdBy });
  return { id: keyId, name: input.name, role: input.role, createdAt, createdBy, apiKey };
}

export const listApiKeys = (orgId: string, options: { limit: number; after?: PageKey }) =>
  queryPage(
    {
      partition: ["gsi1pk", keys.apiKeyList(orgId)],
      sortKeyName: "gsi1sk",
      indexName: "gsi1",
      newestFirst: true,
      limit: options.limit,
      after: options.after,
    },
    toApiKey,
  );

/** The table key of the organization's key with this id: a read of its (short) list of keys. */
async function apiKeyItemKey(orgId: string, keyId: string): Promise<Item | undefined> {
  for await (const entry of queryItems({
    IndexName: "gsi1",
    KeyConditionExpression: "gsi1pk = :list",
    ExpressionAttributeValues: { ":list": keys.apiKeyList(orgId) },
  })) {
    if (String(entry.gsi1sk).endsWith(`#${keyId}`)) return { pk: entry.pk, sk: entry.sk };
  }
  return undefined;
}

/** Revokes a key of the organization (again: no change); never the key making the request. */
export async function revokeApiKey(orgId: string, keyId: string, revokedBy: string): Promise<ApiKeySummary> {
  if (keyId === revokedBy) throw conflict("A key cannot revoke itself; revoke it with another admin key");
  const key = await apiKeyItemKey(orgId, keyId);
  if (!key) throw notFound("API key", keyId);
  const item = await table.update({
    Key: key,
    // The first revocation's time and author stay.
    UpdateExpression: "SET revokedAt = if_not_exists(revokedAt, :now), revokedBy = if_not_exists(revokedBy, :by)",
    ConditionExpression: "orgId = :org",
    ExpressionAttributeValues: { ":now": new Date().toISOString(), ":by": revokedBy, ":org": orgId },
    ReturnValues: "ALL_NEW",
  });
  forgetCachedApiKey(String(key.pk).slice("APIKEY#".length));
  return toApiKey(item ?? {});
}
