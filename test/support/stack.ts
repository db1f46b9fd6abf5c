/**
 * Integration-test harness: a fresh table and queues on the shared engines (started once
 * by the global setup), the local runtime running the real wiring, and an org + key.
 * One stack per test file: vitest runs each file in its own process.
 */
import { randomUUID } from "node:crypto";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { SQSClient } from "@aws-sdk/client-sqs";
import { inject } from "vitest";
import { type FakeAnthropicOptions, startFakeAnthropic } from "../../infra/local/fake-anthropic.ts";
import { deleteQueues, deleteTable } from "../../infra/local/resources.ts";
import { type LocalStackOptions, startLocalStack } from "../../infra/local/stack.ts";
import { pendingDeltaCount } from "../../shared/analytics/deltas.ts";
import { createApiKey, createOrganization } from "../../shared/store/organizations.ts";

export interface TestStackOptions {
  runtime?: LocalStackOptions["runtime"];
  queueOverrides?: LocalStackOptions["queueOverrides"];
  env?: Record<string, string>;
  /** Options of the fake Anthropic server every test stack talks to (never the internet). */
  anthropic?: FakeAnthropicOptions;
}

export interface ApiResponse<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

const region = "us-east-1";
const credentials = { accessKeyId: "local", secretAccessKey: "local" };

/**
 * Work queue settings for files that crash invocations on purpose: a redelivery after 2 s
 * instead of 20. Elsewhere the timeout stays longer than any invocation on a loaded machine
 * (as in AWS, where it is six times the function's), so a batch still running is never
 * redelivered past the receive limit and dead-lettered.
 */
export const crashTestQueues = { work: { visibilityTimeoutSeconds: 2, maxReceiveCount: 3 } };

export async function startTestStack(options: TestStackOptions = {}) {
  const suffix = randomUUID().slice(0, 8);
  // Short test transcripts still exercise the prompt cache, and the evaluators know it.
  const minCacheableTokens = options.anthropic?.minCacheableTokens ?? 0;
  const anthropic = await startFakeAnthropic({ ...options.anthropic, minCacheableTokens });
  const stack = await startLocalStack({
    dynamodbEndpoint: inject("dynamodbEndpoint"),
    sqsEndpoint: inject("sqsEndpoint"),
    tableName: `mcj-test-${suffix}`,
    queuePrefix: `mcj-test-${suffix}`,
    queueOverrides: {
      work: { visibilityTimeoutSeconds: 20, maxReceiveCount: 3 },
      dispatch: { visibilityTimeoutSeconds: 5 },
      webhook: { visibilityTimeoutSeconds: 5 },
      ...options.queueOverrides,
    },
    env: {
      RETRY_BASE_DELAY_SECONDS: "0",
      RETRY_MAX_DELAY_SECONDS: "1",
      ANTHROPIC_BASE_URL: anthropic.url,
      ANTHROPIC_API_KEY: "test-key-for-the-fake-server",
      // Receivers in tests listen on 127.0.0.1; retries come back within a second or two.
      WEBHOOK_ALLOW_LOOPBACK: "true",
      WEBHOOK_RETRY_BASE_SECONDS: "1",
      // Tests send requests back to back; the API rate test sets its organization's own limit.
      API_REQUESTS_PER_SECOND: "5000",
      API_BURST: "10000",
      MIN_CACHEABLE_PROMPT_TOKENS: String(minCacheableTokens),
      ...options.env,
    },
    runtime: {
      idlePollMs: 50,
      // Tests inject crashes on purpose; show the runtime's log only when asked (LOG_LEVEL=INFO).
      ...(process.env.LOG_LEVEL === "SILENT" ? { logger: { info() {}, error() {} } } : {}),
      ...options.runtime,
    },
  });

  async function newOrganization(name = "Test org") {
    const { orgId } = await createOrganization(name);
    const { apiKey } = await createApiKey(orgId, { role: "admin", name: "test" });
    return { orgId, apiKey, api: client(apiKey) };
  }

  function client(apiKey: string | undefined) {
    return async <T = any>(method: string, path: string, body?: unknown): Promise<ApiResponse<T>> => {
      const response = await fetch(`${stack.baseUrl}${path}`, {
        method,
        headers: {
          ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}),
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
        },
        body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
      });
      const text = await response.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {}
      return { status: response.status, body: parsed as T, headers: response.headers };
    };
  }

  const org = await newOrganization();
  /** Stops everything and deletes the file's table and queues: the shared engines keep nothing of it. */
  const stop = async () => {
    await stack.stop();
    await anthropic.stop();
    const dynamodb = new DynamoDBClient({ region, endpoint: inject("dynamodbEndpoint"), credentials });
    const sqs = new SQSClient({ region, endpoint: inject("sqsEndpoint"), credentials });
    try {
      await Promise.all([deleteTable(dynamodb, stack.tableName), deleteQueues(sqs, stack.queues)]);
    } finally {
      dynamodb.destroy();
      sqs.destroy();
    }
  };
  return { ...stack, ...org, stop, anthropic, newOrganization, client };
}

export type TestStack = Awaited<ReturnType<typeof startTestStack>>;

/** Polls until `check` returns a value (not undefined) or the timeout passes. */
export async function waitFor<T>(
  check: () => Promise<T | undefined>,
  { timeoutMs = 90_000, intervalMs = 100, what = "condition" } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const result = await check();
      if (result !== undefined) return result;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(`Timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

/** Waits until the job leaves PENDING/PROCESSING and returns it. */
export async function waitForJobEnd(api: TestStack["api"], jobId: string, timeoutMs = 180_000) {
  return waitFor(
    async () => {
      const { body } = await api("GET", `/v1/metric/collection-jobs/${jobId}`);
      const job = body.data;
      return job && !["PENDING", "PROCESSING"].includes(job.status) ? job : undefined;
    },
    { timeoutMs, intervalMs: 200, what: `job ${jobId} to finish` },
  );
}

/** The jobs policy `policyId` started, polled for until there is at least one. */
export async function policyJobs(api: TestStack["api"], policyId: string, timeoutMs = 30_000): Promise<any[]> {
  return waitFor(
    async () => {
      const { body } = await api("GET", "/v1/metric/collection-jobs?limit=50");
      const own = body.data.filter((job: { policyIds?: string[] }) => job.policyIds?.includes(policyId));
      return own.length > 0 ? own : undefined;
    },
    { timeoutMs, what: `a job of policy ${policyId}` },
  );
}

/** Creates a job over `callIds` × `metrics` through the API and waits until it ends; returns it. */
export async function runJobToEnd(
  api: TestStack["api"],
  callIds: string[],
  metrics: { id: string }[],
  timeoutMs?: number,
) {
  const created = await api("POST", "/v1/metric/collection-jobs", {
    callIds,
    metrics: metrics.map((m) => ({ id: m.id })),
  });
  if (created.status !== 201) throw new Error(`create job: ${created.status} ${JSON.stringify(created.body)}`);
  return waitForJobEnd(api, created.body.data.id, timeoutMs);
}

/** Waits until every rollup delta has been applied: analytics answers are then final. */
export async function waitForRollups(timeoutMs = 60_000) {
  await waitFor(async () => ((await pendingDeltaCount()) === 0 ? true : undefined), {
    timeoutMs,
    intervalMs: 100,
    what: "rollup deltas to be applied",
  });
}
