import { apiRoute } from "../../shared/http/api-handler.ts";
import { rotateWebhookSecret } from "../../shared/store/webhooks.ts";

/** Replaces the signing secret; deliveries from now on are signed with the new one. */
export const handler = apiRoute({ role: "admin", successStatus: 201 }, async ({ principal }) => ({
  data: await rotateWebhookSecret(principal.orgId),
}));
