/**
 * Creates an organization (or reuses one with --org-id) and an API key for it. Works
 * against the local stack (DYNAMODB_ENDPOINT) and a deployed table (AWS credentials).
 *
 *   TABLE_NAME=<table> [DYNAMODB_ENDPOINT=http://127.0.0.1:8000] npm run create-api-key -- \
 *     --org-name "Acme" [--org-id <id>] [--role admin|member] [--key-name ci]
 */
import { parseArgs } from "node:util";
import { createApiKey, createOrganization } from "../../shared/store/organizations.ts";

const { values } = parseArgs({
  options: {
    "org-name": { type: "string" },
    "org-id": { type: "string" },
    role: { type: "string", default: "admin" },
    "key-name": { type: "string", default: "cli" },
  },
});
const role = values.role;
if (role !== "admin" && role !== "member") {
  console.error("--role must be admin or member");
  process.exit(2);
}
if (!process.env.TABLE_NAME) {
  console.error("Set TABLE_NAME (and DYNAMODB_ENDPOINT for the local stack)");
  process.exit(2);
}
if (process.env.DYNAMODB_ENDPOINT) {
  // DynamoDB Local accepts any credentials, but the SDK insists on having some.
  process.env.AWS_ACCESS_KEY_ID ??= "local";
  process.env.AWS_SECRET_ACCESS_KEY ??= "local";
  process.env.AWS_REGION ??= "us-east-1";
}
let orgId = values["org-id"];
if (!orgId) {
  if (!values["org-name"]) {
    console.error("Give --org-name to create an organization, or --org-id to add a key to an existing one");
    process.exit(2);
  }
  ({ orgId } = await createOrganization(values["org-name"]));
}
const { apiKey, keyId } = await createApiKey(orgId, { role, name: values["key-name"] });
console.log(JSON.stringify({ orgId, keyId, role, apiKey }, null, 2));
console.error("Store the key now: only its hash is kept.");
