/**
 * The wiring table: every route, queue consumer, stream consumer and schedule of the
 * service. The CDK stack deploys exactly this; the local runtime runs exactly this. API
 * routes come from the contract (shared/http/contract.ts), where each is declared once.
 */
import { contract, type RouteContract } from "./http/contract.ts";
import { CALL_ENTITY, JOB_ENTITY, ROLLUP_DELTA_ENTITY, streamRecordsOf } from "./stream-entities.ts";
import type { QueueName } from "./table.ts";

/** `apiKeys`: reads API-key items only (the authorizer), enforced on the partition key. */
export type TableAccess = "apiKeys" | "read" | "readWrite";

/** What a function may touch; the CDK stack turns it into grants + env vars. */
export interface Access {
  table?: TableAccess;
  /** Counts requests against their organization's API rate: reads and writes its rate items (ORG#…#APIRATE) only. */
  apiRateLimit?: boolean;
  /** Queues the function sends to. */
  sendTo?: QueueName[];
  /** Secrets the function reads at run time (never passed as plain env vars). */
  secrets?: SecretName[];
}

/** `anthropic`: the Anthropic API key; its id reaches the function as ANTHROPIC_API_KEY_SECRET_ID. */
export type SecretName = "anthropic";

/** What the service's code calls on the table (it never scans); transactions need only these too. */
export const TABLE_READ_ACTIONS = ["GetItem", "BatchGetItem", "Query", "ConditionCheckItem"] as const;
export const TABLE_WRITE_ACTIONS = ["PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"] as const;

/** Default cap on concurrent evaluator invocations; each runs its batch's model calls at once, as the shared limiter admits them. */
export const DEFAULT_LLM_MAX_CONCURRENCY = 50;

/** Memory and timeout of a function whose entry names none, in AWS and locally alike. */
export const FUNCTION_DEFAULTS = { memoryMb: 512, timeoutSeconds: 29 } as const;

export const memoryOf = (entry: FunctionEntry): number => entry.memoryMb ?? FUNCTION_DEFAULTS.memoryMb;
export const timeoutOf = (entry: FunctionEntry): number => entry.timeoutSeconds ?? FUNCTION_DEFAULTS.timeoutSeconds;

export interface FunctionEntry {
  /** Stable id, used for construct ids and log names. */
  id: string;
  /** Module path from the repo root; it must export `handler`. */
  entry: string;
  access: Access;
  timeoutSeconds?: number;
  memoryMb?: number;
  /** A repo folder the function reads at run time; the CDK app copies it next to the bundle. */
  assetsFolder?: string;
}

export type HttpMethod = "GET" | "POST" | "PUT" | "DELETE";

/** A route's own API Gateway throttle, below the stage's: for routes that cost model calls or fan out. */
export interface RouteThrottle {
  ratePerSecond: number;
  burst: number;
}

export interface RouteEntry extends FunctionEntry {
  method: HttpMethod;
  throttle?: RouteThrottle;
  /** API Gateway path syntax, e.g. /v1/call/{callId}. */
  path: string;
  /** Served without an API key: no authorizer in front of it (GET /openapi.json). */
  public?: boolean;
  /** Serves files, not JSON: outside the API contract and the OpenAPI document (the web console). */
  staticFiles?: boolean;
}

export interface QueueConsumerEntry extends FunctionEntry {
  queue: QueueName;
  /** Consumes the queue's dead-letter queue instead of the queue itself. */
  deadLetters?: boolean;
  batchSize: number;
  maxBatchingWindowSeconds: number;
  /** Cap on concurrent invocations (SQS event source maximum concurrency). */
  maxConcurrency: number;
}

export interface StreamConsumerEntry extends FunctionEntry {
  batchSize: number;
  /** How long a batch may gather records before the function is invoked (Lambda's default 0: each poll). */
  maxBatchingWindowSeconds?: number;
  retryAttempts: number;
  maxRecordAgeSeconds: number;
  /** Lambda event filter pattern (EventBridge pattern syntax) applied to stream records. */
  filterPattern: Record<string, unknown>;
}

export interface ScheduleEntry extends FunctionEntry {
  /** EventBridge schedule expression, e.g. rate(5 minutes). */
  expression: string;
}

export interface Wiring {
  /** Request authorizer in front of every route: API key → organization + role. */
  authorizer: FunctionEntry;
  routes: RouteEntry[];
  queueConsumers: QueueConsumerEntry[];
  streamConsumers: StreamConsumerEntry[];
  schedules: ScheduleEntry[];
}

const api = (method: HttpMethod, path: string, name: string, access: Access = { table: "read" }): RouteEntry => ({
  id: `api-${name}`,
  method,
  path,
  entry: `functions/api/${name}.ts`,
  access,
});

/** The web console's files, two routes (the page and its assets) on one handler. */
/** The consumer of a queue's dead letters: records each item as ERROR, so its job still finishes. */
const deadLetterRecorder = (id: string, queue: QueueName): QueueConsumerEntry => ({
  id,
  entry: "functions/workers/dead-letter-recorder.ts",
  queue,
  deadLetters: true,
  access: { table: "readWrite" },
  batchSize: 10,
  maxBatchingWindowSeconds: 0,
  maxConcurrency: 2,
  timeoutSeconds: 60,
});

const consoleRoute = {
  ...api("GET", "/console", "get-console", {}),
  public: true,
  staticFiles: true,
  assetsFolder: "console",
  memoryMb: 256,
} satisfies RouteEntry;

export const wiring: Wiring = {
  authorizer: { id: "api-authorizer", entry: "functions/api/authorizer.ts", access: { table: "apiKeys" } },
  routes: [
    { ...consoleRoute, id: "api-get-console", path: "/console" },
    { ...consoleRoute, id: "api-get-console-file", path: "/console/{file+}" },
    ...Object.entries(contract).map(([routeKey, entry]: [string, RouteContract]) => {
      const [method, path] = routeKey.split(" ") as [HttpMethod, string];
      // Every route a key calls counts against its organization's API rate (shared/http/api-rate-limit.ts).
      const access = { table: "read" as const, ...entry.access, ...(entry.public ? {} : { apiRateLimit: true }) };
      return {
        ...api(method, path, entry.handler, access),
        ...(entry.public ? { public: true } : {}),
        ...(entry.timeoutSeconds ? { timeoutSeconds: entry.timeoutSeconds } : {}),
        ...(entry.throttle ? { throttle: entry.throttle } : {}),
      };
    }),
  ],
  queueConsumers: [
    {
      id: "dispatcher",
      entry: "functions/workers/dispatcher.ts",
      queue: "dispatch",
      access: { table: "readWrite", sendTo: ["work"] },
      batchSize: 1,
      maxBatchingWindowSeconds: 0,
      // Two pages at a time (Lambda's minimum), not more: the work queue then holds a job's
      // items in about the order of its calls, so values recorded together share rollup
      // updates (calls listed by time, as backfills list them, share hours and days).
      maxConcurrency: 2,
      timeoutSeconds: 120,
    },
    {
      id: "evaluator",
      entry: "functions/workers/evaluator.ts",
      queue: "work",
      // Sends items that must run again back to the work queue with their retry state.
      access: { table: "readWrite", sendTo: ["work", "batch"], secrets: ["anthropic"] },
      // Twenty items share one recording transaction, one job-status read and one rollup
      // delta (against ten: half the wait for the transaction, a fifth fewer write units).
      // Not 40, though it halves the Lambda time per item under the account's limits: a
      // 1,000-item job spread over 50 pollers fills no batch of 40, so each waits out the
      // 1 s batching window (docs/benchmark-log.md, 2026-12-08).
      batchSize: 20,
      maxBatchingWindowSeconds: 1,
      maxConcurrency: DEFAULT_LLM_MAX_CONCURRENCY,
      // A batch's model calls run at once, paced by the shared limiter (a batch it cannot fit soon is deferred).
      timeoutSeconds: 300,
    },
    // Records items whose every delivery crashed as ERROR, so their jobs still finish.
    deadLetterRecorder("dead-letter-recorder", "work"),
    {
      // Gathers batch-mode items into Message Batches: large batches make few, large provider batches.
      id: "batch-submitter",
      entry: "functions/workers/batch-submitter.ts",
      queue: "batch",
      access: { table: "readWrite", sendTo: ["batch"], secrets: ["anthropic"] },
      batchSize: 1000,
      maxBatchingWindowSeconds: 5,
      maxConcurrency: 2,
      timeoutSeconds: 120,
      memoryMb: 1024,
    },
    // Items whose every submission attempt crashed: recorded as ERROR, like the work queue's.
    deadLetterRecorder("batch-dead-letter-recorder", "batch"),
    {
      id: "webhook-sender",
      entry: "functions/workers/webhook-sender.ts",
      queue: "webhook",
      access: { table: "readWrite" },
      batchSize: 10,
      maxBatchingWindowSeconds: 0,
      maxConcurrency: 5,
      timeoutSeconds: 60,
    },
  ],
  // Two readers of the table's stream, the most a DynamoDB stream shard serves without
  // throttling. Finalizing jobs and matching new calls share the low-latency router (each
  // handler idempotent on its own); rollup deltas keep their own consumer, whose large
  // batches and 5 s window would otherwise delay every job's end by those 5 s.
  streamConsumers: [
    {
      id: "stream-router",
      entry: "functions/workers/stream-router.ts",
      access: { table: "readWrite", sendTo: ["webhook"] },
      batchSize: 100,
      retryAttempts: 10,
      maxRecordAgeSeconds: 3600,
      filterPattern: { $or: [streamRecordsOf("MODIFY", JOB_ENTITY), streamRecordsOf("INSERT", CALL_ENTITY)] },
    },
    {
      id: "rollup-applier",
      entry: "functions/workers/rollup-applier.ts",
      access: { table: "readWrite" },
      // Large batches merge more values into each rollup update: values of one metric and
      // label set in the same hour then share it. A few seconds more of analytics lag.
      batchSize: 1000,
      maxBatchingWindowSeconds: 5,
      timeoutSeconds: 120,
      retryAttempts: 10,
      // Deltas a failing consumer leaves behind are applied by the rollup-sweeper schedule.
      maxRecordAgeSeconds: 3600,
      filterPattern: streamRecordsOf("INSERT", ROLLUP_DELTA_ENTITY),
    },
  ],
  schedules: [
    {
      id: "policy-flusher",
      entry: "functions/workers/policy-flusher.ts",
      access: { table: "readWrite", sendTo: ["dispatch"] },
      expression: "rate(1 minute)",
      timeoutSeconds: 60,
    },
    {
      id: "rollup-sweeper",
      entry: "functions/workers/rollup-sweeper.ts",
      access: { table: "readWrite" },
      expression: "rate(5 minutes)",
      timeoutSeconds: 300,
    },
    {
      id: "backfill-runner",
      entry: "functions/workers/backfill-runner.ts",
      access: { table: "readWrite", sendTo: ["dispatch"] },
      expression: "rate(1 minute)",
      timeoutSeconds: 300,
    },
    {
      // Creates the batches submitters left and records the results of ended batches.
      id: "batch-collector",
      entry: "functions/workers/batch-collector.ts",
      access: { table: "readWrite", sendTo: ["batch"], secrets: ["anthropic"] },
      expression: "rate(1 minute)",
      timeoutSeconds: 300,
      memoryMb: 1024,
    },
    {
      id: "reconciler",
      entry: "functions/workers/reconciler.ts",
      access: { table: "readWrite", sendTo: ["dispatch", "work", "webhook"] },
      // Every minute: jobs created with expiresInSeconds end within a minute of their expiry.
      expression: "rate(1 minute)",
      timeoutSeconds: 300,
    },
  ],
};
