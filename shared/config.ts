/**
 * The one place environment variables are read. Validated with zod at first use so a
 * misconfigured function fails loudly at cold start instead of mid-request.
 */
import { z } from "zod";
import { type QueueName, queueDeclarations } from "./table.ts";

const optionalUrl = z.url().optional();

type QueueUrlKey = `${QueueName}QueueUrl`;
/** The setting that holds a queue's URL (WORK_QUEUE_URL, …). */
const queueUrlKey = (queue: QueueName): QueueUrlKey => `${queue}QueueUrl`;
/** One URL setting per declared queue, so a new queue needs nothing here. */
const queueUrlFields = Object.fromEntries(
  (Object.keys(queueDeclarations) as QueueName[]).map((queue) => [queueUrlKey(queue), z.string().optional()]),
) as Record<QueueUrlKey, z.ZodOptional<z.ZodString>>;

/** The model of LLM_JUDGE definitions that name none, unless JUDGE_MODEL (or the CDK app's judgeModel) says otherwise. */
export const DEFAULT_JUDGE_MODEL = "claude-sonnet-5-5";

const configSchema = z.object({
  tableName: z.string().min(1),
  region: z.string().min(1).default("us-east-1"),
  /** Set only locally (DynamoDB Local / fauxqs); unset in AWS. */
  dynamodbEndpoint: optionalUrl,
  sqsEndpoint: optionalUrl,
  ...queueUrlFields,
  /** Receives after which the evaluator records ERROR instead of retrying (mirrors the redrive policy). */
  workMaxReceiveCount: z.coerce.number().int().min(1).default(queueDeclarations.work.maxReceiveCount),
  /** Base and cap of the jittered exponential backoff for retried items. */
  retryBaseDelaySeconds: z.coerce.number().min(0).default(5),
  retryMaxDelaySeconds: z.coerce.number().min(0).max(900).default(300),
  /**
   * The evaluator records a result at most this long after it is known (results within the
   * window share one write): what a crashed invocation can lose, against contended writes.
   */
  recordGroupWindowMs: z.coerce.number().int().min(0).max(60_000).default(2000),
  /** How long an item may keep meeting rate limits and overload (429/529) before it is recorded as ERROR. */
  rateLimitMaxWaitSeconds: z.coerce
    .number()
    .min(0)
    .default(6 * 3600),
  /**
   * The share of the Anthropic account's rate limits (as its answers report them) the
   * evaluators keep to: below 1 leaves room for other users of the same key.
   */
  llmRateLimitTarget: z.coerce.number().gt(0).max(1).default(0.95),
  /**
   * The shortest prompt prefix the API caches: 1,024 tokens for Sonnet models, the judge's
   * default (some models need up to 4,096; there the answers' usage corrects the limiter's
   * estimate). A call's transcript shorter than this is sent whole every time.
   */
  minCacheablePromptTokens: z.coerce.number().int().min(0).default(1_024),
  /** Most items one job may hold (callIds x metrics). */
  maxJobItems: z.coerce.number().int().min(1).default(200_000),
  /** Model for LLM_JUDGE definitions that name none. */
  judgeModel: z.string().min(1).default(DEFAULT_JUDGE_MODEL),
  /** Cap on the judge's answer: a small JSON object plus (on current models) adaptive thinking. */
  judgeMaxTokens: z.coerce.number().int().min(64).max(32_000).default(4096),
  /** `output_config.effort` for models that take it; empty string to leave the model's default. */
  judgeEffort: z.enum(["low", "medium", "high", ""]).default("low"),
  /** Locally: the fake server or a custom gateway. Unset in AWS (the SDK's default). */
  anthropicBaseUrl: optionalUrl,
  /** Local development only; in AWS the key is read from Secrets Manager. */
  anthropicApiKey: z.string().min(1).optional(),
  anthropicApiKeySecretId: z.string().min(1).optional(),
  /** Below the evaluator's Lambda timeout so a hung request fails as retryable, not as a crash. */
  anthropicTimeoutMs: z.coerce.number().int().min(1000).default(45_000),
  /** The playground answers 504 after this long: its function must end before the HTTP API's 30 s limit. */
  playgroundDeadlineMs: z.coerce.number().int().min(1000).max(28_000).default(25_000),
  /** The queue owns retries (with backoff and retry-after); the SDK's own stay off. */
  anthropicMaxRetries: z.coerce.number().int().min(0).max(5).default(0),
  /** Local development only: webhooks may go to http://localhost. Never set in AWS. */
  webhookAllowLoopback: z.stringbool().default(false),
  /** First retry delay of a failed webhook delivery; doubles per attempt, capped at an hour. */
  webhookRetryBaseSeconds: z.coerce.number().min(0).default(30),
  /** How long a webhook delivery is retried before it is marked failed. */
  webhookRetryHours: z.coerce.number().min(0).default(24),
  webhookTimeoutMs: z.coerce.number().int().min(100).default(10_000),
  /** Most call × metric items one backfill run may create; the rest wait for the next run. */
  backfillMaxItems: z.coerce.number().int().min(1).default(50_000),
  /** Calls matched by a policy within one window become one job. */
  policyWindowSeconds: z.coerce.number().int().min(1).max(3600).default(60),
  /** The reconciler repairs a running job that made no progress (no `updatedAt` change) for this long. */
  reconcileStallSeconds: z.coerce.number().int().min(60).default(900),
  /** After this long since creation, the reconciler records a job's unprocessed items as ERROR. */
  reconcileCeilingSeconds: z.coerce.number().int().min(60).default(86_400),
  /**
   * A batch submission still without its provider batch this long after it was written was
   * left by a submitter that died (its timeout is far shorter): the collector finishes it.
   */
  llmBatchStaleSeconds: z.coerce.number().int().min(1).default(300),
  /** Calls per policy batch item; ids are at most 256 characters, so 1,000 stays well under DynamoDB's 400 KB. */
  policyBatchItemCalls: z.coerce.number().int().min(1).max(1_000).default(1_000),
  /** Each organization's API requests per second (a token bucket), unless its settings say otherwise. */
  apiRequestsPerSecond: z.coerce.number().gt(0).max(10_000).default(50),
  /** Requests an organization may send at once above that rate (the bucket's size). */
  apiBurst: z.coerce.number().int().min(1).max(100_000).default(100),
  /** Overrides/additions to the price table, JSON: {"model": {"input": 3, "output": 15, ...}} in USD per million tokens. */
  llmPricesJson: z.string().optional(),
});

export type Config = z.infer<typeof configSchema>;

let cached: Config | undefined;

/** Forget the parsed environment; for tests and the local stack that set env vars at run time. */
export function resetConfig(): void {
  cached = undefined;
}

/** The environment variable of each setting: its key in UPPER_SNAKE_CASE (the region is Lambda's AWS_REGION). */
export const envVarOf = (key: keyof Config): string =>
  key === "region" ? "AWS_REGION" : key.replace(/[A-Z]/g, (letter) => `_${letter}`).toUpperCase();

export const configKeys = Object.keys(configSchema.shape) as (keyof Config)[];

/** An empty variable is unset, except where empty means something (`JUDGE_EFFORT=""`: the model's default). */
const EMPTY_IS_A_VALUE: ReadonlySet<keyof Config> = new Set(["judgeEffort"]);

/** The defaults of every setting, for the docs' drift test (docs/configuration.md). */
export const configDefaults = (): Partial<Config> => configSchema.parse({ tableName: "-" });

export function config(): Config {
  cached ??= configSchema.parse(
    Object.fromEntries(
      configKeys.map((key) => {
        const value = process.env[envVarOf(key)];
        return [key, value === "" && !EMPTY_IS_A_VALUE.has(key) ? undefined : value];
      }),
    ),
  );
  return cached;
}

/** The environment variables that carry these settings, named as config() reads them. */
export const envFor = (settings: { [K in keyof Config]?: string | number | boolean }): Record<string, string> =>
  Object.fromEntries(
    Object.entries(settings).flatMap(([key, value]) =>
      value === undefined ? [] : [[envVarOf(key as keyof Config), String(value)]],
    ),
  );

/** The env var that carries a queue's URL; the CDK stack sets it next to the grant. */
export const queueUrlEnvVar = (queue: QueueName): string => envVarOf(queueUrlKey(queue));

export function requireQueueUrl(name: QueueName): string {
  const url = config()[queueUrlKey(name)];
  if (!url) throw new Error(`${queueUrlEnvVar(name)} is not set: this function has no access to the ${name} queue`);
  return url;
}
