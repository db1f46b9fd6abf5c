/**
 * The pipeline under measurement: the production handlers and wiring on DynamoDB Local, the
 * SQS emulator and the fake Anthropic server, with every AWS request the service makes
 * counted (request meters on its clients) and every handler invocation timed.
 */
import { readFile } from "node:fs/promises";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { SQSClient } from "@aws-sdk/client-sqs";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import type { Context } from "aws-lambda";
import { type Engine, startDynamoDbLocal } from "../infra/local/engines.ts";
import type { FakeAnthropic } from "../infra/local/fake-anthropic.ts";
import { startInThread } from "../infra/local/in-thread.ts";
import { startLocalStack } from "../infra/local/stack.ts";
import { dynamo, sqs } from "../shared/aws.ts";
import { createApiKey, createOrganization } from "../shared/store/organizations.ts";
import { wiring } from "../shared/wiring.ts";
import { createRequestMeter } from "./request-meter.ts";

type Handler = (event: never, context: Context) => Promise<unknown>;

export const BENCH_TABLE = "mcj-bench";
/** Concurrency cap C: evaluator invocations in flight. */
export const BENCH_CONCURRENCY = 50;

/** Handler time and invocations per function id, for the Lambda part of the cost model. */
export interface HandlerTimes {
  ms: Record<string, number>;
  invocations: Record<string, number>;
}

export type PipelineHarness = Awaited<ReturnType<typeof startPipelineHarness>>;

/**
 * Starts the engines (each stand-in for an AWS service or the model on a thread of its own,
 * so the handlers and event sources, Lambda's side, have the main event loop to themselves),
 * the local stack at `concurrency` pollers per queue, and a benchmark organization.
 */
export async function startPipelineHarness(options: { concurrency: number }) {
  const dynamodbEngine = await startDynamoDbLocal();
  const sqsEngine = await startInThread<Engine>(
    new URL("../infra/local/engines.ts", import.meta.url),
    "startSqsEmulator",
  );
  const anthropic = await startInThread<FakeAnthropic>(
    new URL("../infra/local/fake-anthropic.ts", import.meta.url),
    "startFakeAnthropic",
    { latencyMs: 0 },
  );
  const meters = { dynamo: createRequestMeter(), sqs: createRequestMeter() };

  const times: HandlerTimes = { ms: {}, invocations: {} };
  const timed = (id: string, handler: Handler): Handler => {
    return async (event, context) => {
      const started = performance.now();
      try {
        return await handler(event, context);
      } finally {
        times.ms[id] = (times.ms[id] ?? 0) + performance.now() - started;
        times.invocations[id] = (times.invocations[id] ?? 0) + 1;
      }
    };
  };
  const overrides: Record<string, Handler> = {};
  for (const entry of [...wiring.queueConsumers, ...wiring.streamConsumers]) {
    const module = (await import(`../${entry.entry}`)) as { handler: Handler };
    overrides[entry.id] = timed(entry.id, module.handler);
  }

  const stack = await startLocalStack({
    dynamodbEndpoint: dynamodbEngine.endpoint,
    sqsEndpoint: sqsEngine.endpoint,
    tableName: BENCH_TABLE,
    queuePrefix: BENCH_TABLE,
    // A crashed item comes back within a minute instead of the production 18.
    queueOverrides: { work: { visibilityTimeoutSeconds: 60 }, dispatch: { visibilityTimeoutSeconds: 60 } },
    env: {
      ANTHROPIC_BASE_URL: anthropic.url,
      ANTHROPIC_API_KEY: "bench-key-for-the-fake-server",
      LOG_LEVEL: "ERROR",
      RETRY_BASE_DELAY_SECONDS: "1",
      RETRY_MAX_DELAY_SECONDS: "10",
      // The benchmark measures the pipeline, not the API's per-organization rate.
      API_REQUESTS_PER_SECOND: "5000",
      API_BURST: "10000",
    },
    runtime: {
      handlerOverrides: overrides as never,
      maxPollersPerQueue: options.concurrency,
      logger: { info() {}, error: (message, extra) => console.error(message, ...(extra ? [extra] : [])) },
      instrumentClient: (client) => (client instanceof SQSClient ? meters.sqs : meters.dynamo).attach(client),
    },
  });
  // The handlers' clients (built once per process, as in a Lambda container).
  meters.dynamo.attach(dynamo());
  meters.sqs.attach(sqs());

  /** Reads job state without the meters, so polling does not skew counts. */
  const observer = DynamoDBDocumentClient.from(
    new DynamoDBClient({
      region: "us-east-1",
      endpoint: dynamodbEngine.endpoint,
      credentials: { accessKeyId: "local", secretAccessKey: "local" },
    }),
  );

  const { orgId } = await createOrganization("Benchmark");
  const { apiKey } = await createApiKey(orgId, { role: "admin", name: "bench" });
  const apiWith =
    (key: string) =>
    async <T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> => {
      const response = await fetch(`${stack.baseUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: response.status, body: (await response.json()) as T };
    };

  return {
    orgId,
    anthropic,
    observer,
    meters,
    times,
    /** Calls the local HTTP API with the benchmark organization's key. */
    api: apiWith(apiKey),
    /** Another organization, with a key of its own. */
    async newOrganization(name: string) {
      const other = await createOrganization(name);
      const { apiKey: otherKey } = await createApiKey(other.orgId, { role: "admin", name: "bench" });
      return { orgId: other.orgId, api: apiWith(otherKey) };
    },
    /**
     * CPU time (ms) so far of this process (all its threads: handlers, pollers, the SQS
     * emulator and the fake Anthropic server) and of DynamoDB Local's JVM, read from /proc
     * (Linux; elsewhere the JVM's is NaN). On 2 cores, CPU per item says how fast a job can
     * possibly run here, whatever waits.
     */
    async cpuMs(): Promise<{ node: number; engine: number }> {
      const { user, system } = process.cpuUsage();
      return { node: (user + system) / 1000, engine: await processCpuMs(dynamodbEngine.pid) };
    },
    async stop() {
      await stack.stop();
      await anthropic.stop();
      await sqsEngine.stop();
      await dynamodbEngine.stop();
    },
  };
}

/** USER_HZ: 100 on every Linux build this runs on. */
const CLOCK_TICKS_PER_SECOND = 100;

async function processCpuMs(pid: number | undefined): Promise<number> {
  try {
    // Fields 14 and 15 (utime, stime) in clock ticks, counted after the parenthesized command name.
    const fields = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1]?.split(" ") ?? [];
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}
