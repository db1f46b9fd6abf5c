/**
 * Brings the service up on local engines: the table and queues from the shared
 * declarations, the environment every function would get from the CDK stack, and the
 * runtime that runs the wiring table. Used by `npm start` and by the integration tests.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { SQSClient } from "@aws-sdk/client-sqs";
import { envFor, queueUrlEnvVar } from "../../shared/config.ts";
import type { QueueName } from "../../shared/table.ts";
import { wiring } from "../../shared/wiring.ts";
import { createQueues, createTable } from "./resources.ts";
import { type LocalRuntimeOptions, startLocalRuntime } from "./runtime.ts";

export interface LocalStackOptions {
  dynamodbEndpoint: string;
  sqsEndpoint: string;
  tableName: string;
  queuePrefix: string;
  port?: number;
  queueOverrides?: Partial<Record<QueueName, { visibilityTimeoutSeconds?: number; maxReceiveCount?: number }>>;
  /** Extra environment for the functions (e.g. retry delays in tests). */
  env?: Record<string, string>;
  runtime?: Pick<
    LocalRuntimeOptions,
    | "handlerOverrides"
    | "deliverEachBatchTwice"
    | "twinDelivery"
    | "idlePollMs"
    | "logger"
    | "maxPollersPerQueue"
    | "scheduleIntervalMs"
    | "instrumentClient"
  >;
}

export async function startLocalStack(options: LocalStackOptions) {
  const region = "us-east-1";
  const credentials = { accessKeyId: "local", secretAccessKey: "local" };
  await createTable(new DynamoDBClient({ region, endpoint: options.dynamodbEndpoint, credentials }), options.tableName);
  const queues = await createQueues(
    new SQSClient({ region, endpoint: options.sqsEndpoint, credentials }),
    options.queuePrefix,
    options.queueOverrides,
  );
  const queueUrls = Object.fromEntries(Object.entries(queues).map(([name, q]) => [name, q.url])) as Record<
    QueueName,
    string
  >;
  Object.assign(process.env, {
    AWS_REGION: region,
    AWS_ACCESS_KEY_ID: credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
    // No CloudWatch here: EMF output would only clutter the console.
    POWERTOOLS_METRICS_DISABLED: "true",
    ...envFor({
      tableName: options.tableName,
      dynamodbEndpoint: options.dynamodbEndpoint,
      sqsEndpoint: options.sqsEndpoint,
      workMaxReceiveCount: options.queueOverrides?.work?.maxReceiveCount,
    }),
    ...Object.fromEntries(Object.entries(queueUrls).map(([name, url]) => [queueUrlEnvVar(name as QueueName), url])),
    ...options.env,
  });
  const runtime = await startLocalRuntime({
    wiring,
    dynamodbEndpoint: options.dynamodbEndpoint,
    sqsEndpoint: options.sqsEndpoint,
    region,
    tableName: options.tableName,
    queueUrls,
    deadLetterQueueUrls: Object.fromEntries(Object.entries(queues).map(([name, q]) => [name, q.dlqUrl])),
    port: options.port ?? 0,
    ...options.runtime,
  });
  return { ...runtime, queues, queueUrls, tableName: options.tableName };
}

export type LocalStack = Awaited<ReturnType<typeof startLocalStack>>;
