/** `mcj keys create --org-…`: an organization's first API key, written to DynamoDB directly (later keys come from the API). */
import { isRole, roles } from "../shared/schemas/role.ts";
import { EXIT, type Io, UsageError, type Values } from "./args.ts";

export async function keys(command: string | undefined, values: Values, io: Io): Promise<number> {
  if (command !== "create") throw new UsageError(`Unknown command "keys ${command ?? ""}"`);
  const role = values.role ?? "admin";
  if (!isRole(role)) throw new UsageError(`--role must be one of ${roles.join(", ")}`);
  if (!io.env.TABLE_NAME)
    throw new UsageError("keys create writes to DynamoDB: set TABLE_NAME (and DYNAMODB_ENDPOINT locally)");
  if (!values["org-id"] && !values["org-name"]) throw new UsageError("Give --org-name (new organization) or --org-id");
  if (io.env.DYNAMODB_ENDPOINT) {
    // DynamoDB Local accepts any credentials, but the AWS SDK insists on having some.
    process.env.AWS_ACCESS_KEY_ID ??= "local";
    process.env.AWS_SECRET_ACCESS_KEY ??= "local";
    process.env.AWS_REGION ??= "us-east-1";
  }
  // Loaded only here: the rest of the CLI needs nothing but the SDK.
  const { createApiKey, createOrganization } = await import("../shared/store/organizations.ts");
  const orgId = values["org-id"] ?? (await createOrganization(values["org-name"] as string)).orgId;
  const { apiKey, keyId } = await createApiKey(orgId, { role, name: values["key-name"] ?? "cli" });
  io.stdout.write(`${JSON.stringify({ orgId, keyId, role, apiKey }, null, 2)}\n`);
  io.stderr.write("Store the key now: only its hash is kept.\n");
  return EXIT.ok;
}
