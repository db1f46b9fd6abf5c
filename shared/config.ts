/**
 * The one place environment variables are read. Validated with zod at first use so a
 * misconfigured function fails loudly at cold start instead of mid-request.
 */
import { z } from "zod";
import { queueDeclarations } from "./table.ts";

const optionalUrl = z.url().optional();

const configSchema = z.object({
  tableName: z.string().min(1),
  region: z.string().min(1).default("us-east-1"),
  /** Set only locally (DynamoDB Local / fauxqs); unset in AWS. */
  dynamodbEndpoint: optionalUrl,
  sqsEndpoint: optionalUrl,
  workQueueUrl: z.string().optional(),
  dispatchQueueUrl: z.string().optional(),
  /** Receives after which the evaluator records ERROR instead of retrying (mirrors the redrive policy). */
  workMaxReceiveCount: z.coerce.number().int().min(1).default(queueDeclarations.work.maxReceiveCount),
  /** Base and cap of the jittered exponential backoff for retried items. */
  retryBaseDelaySeconds: z.coerce.number().min(0).default(5),
  retryMaxDelaySeconds: z.coerce.number().min(0).max(43_200).default(300),
  /** Most items one job may hold (callIds x metrics). */
  maxJobItems: z.coerce.number().int().min(1).default(200_000),
});

export type Config = z.infer<typeof configSchema>;

let cached: Config | undefined;

export function config(): Config {
  cached ??= configSchema.parse({
    tableName: process.env.TABLE_NAME,
    region: process.env.AWS_REGION,
    dynamodbEndpoint: process.env.DYNAMODB_ENDPOINT || undefined,
    sqsEndpoint: process.env.SQS_ENDPOINT || undefined,
    workQueueUrl: process.env.WORK_QUEUE_URL,
    dispatchQueueUrl: process.env.DISPATCH_QUEUE_URL,
    workMaxReceiveCount: process.env.WORK_MAX_RECEIVE_COUNT,
    retryBaseDelaySeconds: process.env.RETRY_BASE_DELAY_SECONDS,
    retryMaxDelaySeconds: process.env.RETRY_MAX_DELAY_SECONDS,
    maxJobItems: process.env.MAX_JOB_ITEMS,
  });
  return cached;
}

/** The env var that carries a queue's URL; the CDK stack sets it next to the grant. */
export const queueUrlEnvVar = (queue: string): string => `${queue.toUpperCase()}_QUEUE_URL`;

export function requireQueueUrl(name: "work" | "dispatch"): string {
  const url = name === "work" ? config().workQueueUrl : config().dispatchQueueUrl;
  if (!url) throw new Error(`${queueUrlEnvVar(name)} is not set: this function has no access to the ${name} queue`);
  return url;
}
