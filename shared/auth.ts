/**
 * API keys: random secrets shown once, stored only as SHA-256 hashes. Lookups are
 * cached briefly per container so a burst of requests costs one read.
 */
import { createHash, randomBytes } from "node:crypto";
import { keys } from "./keys.ts";
import type { Role } from "./schemas/role.ts";
import { table } from "./store/table.ts";

export interface Principal {
  orgId: string;
  role: Role;
  keyId: string;
}

export { isRole, type Role, roles } from "./schemas/role.ts";

const KEY_PREFIX = "mcj_";
export const MIN_KEY_LENGTH = 16;
const CACHE_TTL_MS = 60_000;
const cache = new Map<string, { principal: Principal | null; expires: number }>();

export const hashApiKey = (apiKey: string): string => createHash("sha256").update(apiKey).digest("hex");

export const generateApiKey = (): string => KEY_PREFIX + randomBytes(32).toString("base64url");

export async function storeApiKey(input: {
  apiKey: string;
  orgId: string;
  role: Role;
  name: string;
  /** The key id of the admin key that created it (none for keys made with `mcj keys create`). */
  createdBy?: string;
}): Promise<{ keyId: string; createdAt: string }> {
  const hash = hashApiKey(input.apiKey);
  // The key id is a short, non-secret fingerprint, safe to log and show.
  const keyId = hash.slice(0, 12);
  const createdAt = new Date().toISOString();
  await table.put({
    Item: {
      ...keys.apiKey(hash),
      entity: "ApiKey",
      keyId,
      orgId: input.orgId,
      role: input.role,
      name: input.name,
      createdAt,
      ...(input.createdBy ? { createdBy: input.createdBy } : {}),
      gsi1pk: keys.apiKeyList(input.orgId),
      gsi1sk: `${createdAt}#${keyId}`,
    },
    ConditionExpression: "attribute_not_exists(pk)",
  });
  return { keyId, createdAt };
}

/** A revoked key stops working in this container at once, elsewhere when their caches expire. */
export const forgetCachedApiKey = (hash: string) => cache.delete(hash);

export async function authenticate(authorizationHeader: string | undefined): Promise<Principal | null> {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorizationHeader ?? "");
  const apiKey = match?.[1];
  if (!apiKey || apiKey.length < MIN_KEY_LENGTH || apiKey.length > 200) return null;
  const hash = hashApiKey(apiKey);
  const cached = cache.get(hash);
  if (cached && cached.expires > Date.now()) return cached.principal;
  const item = await table.get(keys.apiKey(hash));
  const principal: Principal | null =
    item && !item.revokedAt ? { orgId: String(item.orgId), role: item.role as Role, keyId: String(item.keyId) } : null;
  cache.set(hash, { principal, expires: Date.now() + CACHE_TTL_MS });
  return principal;
}
