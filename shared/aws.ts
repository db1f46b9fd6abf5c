/** AWS clients, built once per container and reused across invocations. */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { SQSClient } from "@aws-sdk/client-sqs";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { config } from "./config.ts";
import { traced } from "./tracer.ts";

let documentClient: DynamoDBDocumentClient | undefined;
let sqsClient: SQSClient | undefined;

export type ServiceClient = DynamoDBDocumentClient | SQSClient;
const clientHooks: ((client: ServiceClient) => void)[] = [];

/**
 * Runs `hook` on the service's clients, those built already and those built later: how the
 * local runtime adds its access guard and the benchmark its request meter.
 */
export function onServiceClients(hook: (client: ServiceClient) => void): void {
  clientHooks.push(hook);
  for (const client of [documentClient, sqsClient]) if (client) hook(client);
}

export function dynamo(): DynamoDBDocumentClient {
  if (!documentClient) {
    const { region, dynamodbEndpoint } = config();
    const base = new DynamoDBClient({ region, endpoint: dynamodbEndpoint, maxAttempts: 5 });
    documentClient = DynamoDBDocumentClient.from(traced(base), {
      marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: false },
    });
    for (const hook of clientHooks) hook(documentClient);
  }
  return documentClient;
}

export function sqs(): SQSClient {
  if (!sqsClient) {
    const { region, sqsEndpoint } = config();
    // The emulator's queue URLs name a host that does not resolve: the endpoint must be explicit.
    sqsClient = traced(new SQSClient({ region, endpoint: sqsEndpoint, maxAttempts: 5 }));
    for (const hook of clientHooks) hook(sqsClient);
  }
  return sqsClient;
}
