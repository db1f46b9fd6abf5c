/** Organizations (tenants), their settings and their first API key. */
import { randomUUID } from "node:crypto";
import { generateApiKey, type Role, storeApiKey } from "../auth.ts";
import { notFound } from "../errors.ts";
import { keys } from "../keys.ts";
import type { OrganizationSettings } from "../schemas/organization.ts";
import { table } from "./table.ts";

export interface Organization {
  id: string;
  name: string;
  settings: OrganizationSettings;
  createdAt: string;
}

/** Settings are read on hot paths (every job, every playground run): each container keeps them this long. */
const SETTINGS_CACHE_MS = 30_000;
const settingsCache = new Map<string, { settings: OrganizationSettings; expires: number }>();

export async function createOrganization(name: string, orgId: string = randomUUID()): Promise<{ orgId: string }> {
  await table.put({
    Item: { ...keys.organization(orgId), entity: "Organization", orgId, name, createdAt: new Date().toISOString() },
  });
  return { orgId };
}

/** Creates a key and returns the secret; it is shown once and stored only as a hash. */
export async function createApiKey(
  orgId: string,
  options: { role: Role; name: string; apiKey?: string },
): Promise<{ apiKey: string; keyId: string }> {
  const apiKey = options.apiKey ?? generateApiKey();
  const { keyId } = await storeApiKey({ apiKey, orgId, role: options.role, name: options.name });
  return { apiKey, keyId };
}

const toOrganization = (item: Record<string, unknown>): Organization => ({
  id: String(item.orgId),
  name: String(item.name),
  settings: (item.settings ?? {}) as OrganizationSettings,
  createdAt: String(item.createdAt),
});

export async function getOrganization(orgId: string): Promise<Organization> {
  const item = await table.get(keys.organization(orgId));
  if (!item) throw notFound("Organization", orgId);
  return toOrganization(item);
}

/** The organization's settings, as this container last read them (at most 30 s ago). */
export async function organizationSettings(orgId: string): Promise<OrganizationSettings> {
  const cached = settingsCache.get(orgId);
  if (cached && cached.expires > Date.now()) return cached.settings;
  const item = await table.get(keys.organization(orgId));
  const settings = (item?.settings ?? {}) as OrganizationSettings;
  settingsCache.set(orgId, { settings, expires: Date.now() + SETTINGS_CACHE_MS });
  return settings;
}

/** Merges `patch` into the settings (`null` clears one) and answers the organization. */
export async function updateOrganizationSettings(orgId: string, patch: OrganizationSettings): Promise<Organization> {
  const current = await getOrganization(orgId);
  const settings = Object.fromEntries(
    Object.entries({ ...current.settings, ...patch }).filter(([, value]) => value !== null && value !== undefined),
  ) as OrganizationSettings;
  await table.update({
    Key: keys.organization(orgId),
    UpdateExpression: "SET settings = :settings, updatedAt = :now",
    ConditionExpression: "attribute_exists(pk)",
    ExpressionAttributeValues: { ":settings": settings, ":now": new Date().toISOString() },
  });
  settingsCache.set(orgId, { settings, expires: Date.now() + SETTINGS_CACHE_MS });
  return { ...current, settings };
}
