import { sqsBatch } from "../../shared/consumers.ts";
import {
  defaultWebhookDeps,
  deliverWebhooks,
  type WebhookDeps,
  webhookMessageSchema,
} from "../../shared/webhooks/deliver.ts";

/** Tests build the handler with injected fetch and delay; Lambda uses the defaults. */
export const createHandler = (deps: WebhookDeps) => sqsBatch(webhookMessageSchema, deliverWebhooks(deps));

export const handler = createHandler(defaultWebhookDeps);
