import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { getOrCreateWebhookSecret } from "../../shared/store/webhooks.ts";

/** The secret that signs this organization's webhooks (created on first read). */
export const handler = apiRoute(contract["GET /v1/webhook-secret"], async ({ principal }) =>
  getOrCreateWebhookSecret(principal.orgId),
);
