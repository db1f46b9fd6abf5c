import type { SQSEvent } from "aws-lambda";
import { defaultWebhookDeps, processWebhookBatch, type WebhookDeps } from "../../shared/webhooks/deliver.ts";

export const createHandler = (deps: WebhookDeps) => (event: SQSEvent) => processWebhookBatch(event.Records, deps);

export const handler = createHandler(defaultWebhookDeps);
