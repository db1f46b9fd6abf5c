/** AWS clients, built once per container and reused across invocations. */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { SQSClient } from "@aws-sdk/client-sqs";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { config } from "./config.ts";
import { traced } from "./tracer.ts";

let documentClient: DynamoDBDocumentClient | undefined;
let sqsClient: SQSClient | undefined;

export function dynamo(): DynamoDBDocumentClient {
  if (!documentClient) {
    const { region, dynamodbEndpoint } = config();
    const base = new DynamoDBClient({ region, endpoint: dynamodbEndpoint, maxAttempts: 5 });
    documentClient = DynamoDBDocumentClient.from(traced(base), {
      marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: false },
    });
  }
  return documentClient;
}

export function sqs(): SQSClient {
  if (!sqsClient) {
    const { region, sqsEndpoint } = config();
    // The emulator's queue URLs name a host that does not resolve: the endpoint must be explicit.
    sqsClient = traced(new SQSClient({ region, endpoint: sqsEndpoint, maxAttempts: 5 }));
  }
  return sqsClient;
}
