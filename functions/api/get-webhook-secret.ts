import { apiRoute } from "../../shared/http/api-handler.ts";
import { getOrCreateWebhookSecret } from "../../shared/store/webhooks.ts";

/** The secret that signs this organization's webhooks (created on first read). */
export const handler = apiRoute({ role: "admin" }, async ({ principal }) => ({
  data: await getOrCreateWebhookSecret(principal.orgId),
}));
