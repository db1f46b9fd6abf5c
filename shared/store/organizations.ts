/** Organizations (tenants) and their first API key. */
import { randomUUID } from "node:crypto";
import { generateApiKey, type Role, storeApiKey } from "../auth.ts";
import { keys } from "../keys.ts";
import { table } from "./table.ts";

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
