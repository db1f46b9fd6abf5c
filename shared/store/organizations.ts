/** Organizations (tenants) and their first API key. */
import { randomUUID } from "node:crypto";
import { PutCommand } from "@aws-sdk/lib-dynamodb";
import { generateApiKey, type Role, storeApiKey } from "../auth.ts";
import { dynamo } from "../aws.ts";
import { config } from "../config.ts";
import { keys } from "../keys.ts";

export async function createOrganization(name: string, orgId: string = randomUUID()): Promise<{ orgId: string }> {
  await dynamo().send(
    new PutCommand({
      TableName: config().tableName,
      Item: { ...keys.organization(orgId), entity: "Organization", orgId, name, createdAt: new Date().toISOString() },
    }),
  );
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
