import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { rotateWebhookSecret } from "../../shared/store/webhooks.ts";

/** Replaces the signing secret; deliveries from now on are signed with the new one. */
export const handler = apiRoute(contract["POST /v1/webhook-secret"], async ({ principal }) =>
  rotateWebhookSecret(principal.orgId),
);
