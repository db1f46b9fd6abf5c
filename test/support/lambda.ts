/** Invoking a Lambda handler directly in a test: the event around records, and a context. */
import type { APIGatewayProxyEventV2, Context, SQSEvent, SQSRecord } from "aws-lambda";
import { createHandler as createWebhookSender } from "../../functions/workers/webhook-sender.ts";
import { createLambdaContext } from "../../infra/local/invoke.ts";
import type { WebhookDeps } from "../../shared/webhooks/deliver.ts";

export const sqsEvent = (records: Partial<SQSRecord>[]): SQSEvent => ({ Records: records as SQSRecord[] });

/** A context like the local runtime's, with `timeoutSeconds` left before the deadline. */
export const lambdaContext = (functionName = "test-function", timeoutSeconds = 60): Context =>
  createLambdaContext({ id: functionName, entry: "", access: {} }, "us-east-1", Date.now() + timeoutSeconds * 1000);

/** An HTTP API request to `GET /v1/call` that the authorizer resolved to a member of `orgId`. */
export const authorizedRequest = (orgId: string, requestId: string): APIGatewayProxyEventV2 =>
  ({
    headers: {},
    routeKey: "GET /v1/call",
    requestContext: { requestId, authorizer: { lambda: { orgId, role: "member", keyId: "k" } } },
  }) as unknown as APIGatewayProxyEventV2;

/** Runs the webhook sender (with `deps`) on these records, as Lambda would. */
export const sendWebhookBatch = (records: Partial<SQSRecord>[], deps: WebhookDeps) =>
  createWebhookSender(deps)(sqsEvent(records), lambdaContext("webhook-sender"));
