/**
 * The smoke test a customer runs after `cdk deploy` (CI runs it against the local stack):
 * the API answers, a call is stored, a job with a built-in and an LLM metric completes,
 * its values read back, and — given a URL that reaches this machine — the completion
 * webhook arrives signed with the organization's secret. The call and the two definitions
 * are looked up by externalId and slug and reused, so each later run adds one job only.
 */
import { createServer, type Server } from "node:http";
import { ApiConnectionError, ApiError, type Client, type Job } from "../sdk/src/index.ts";
import { verifyWebhook } from "../shared/webhooks/signature.ts";
import { EXIT, type Io } from "./args.ts";

export const SMOKE_EXTERNAL_ID = "mcj-smoke";
export const SMOKE_METRICS = {
  turns: {
    slug: "smoke-turn-count",
    name: "Smoke test: turn count",
    calculationType: "BUILT_IN",
    outputType: "COUNT",
    builtIn: { kind: "TURN_COUNT" },
  },
  greeting: {
    slug: "smoke-greeting",
    name: "Smoke test: greeting",
    calculationType: "LLM_JUDGE",
    outputType: "BOOLEAN",
    llmPrompt: "Did the agent greet the customer at the start of the call?",
  },
} as const;

/** Four segments, four speaker turns: the built-in metric's expected value. */
const SMOKE_TURNS = 4;

export interface SmokeOptions {
  /** Where the service should post the webhook: a URL that forwards to `webhookPort` here. */
  webhookUrl?: string;
  /** The port this test listens on for the webhook (127.0.0.1). */
  webhookPort?: number;
  /** How long the job and the webhook may take. */
  timeoutMs?: number;
}

function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

function smokeCall() {
  const startedAt = new Date(Date.now() - 60_000);
  return {
    externalId: SMOKE_EXTERNAL_ID,
    agentId: "mcj-smoke-agent",
    callDirection: "INBOUND",
    interfaceType: "PHONE",
    startedAt: startedAt.toISOString(),
    endedAt: new Date(startedAt.getTime() + 20_000).toISOString(),
    durationMs: 20_000,
    properties: { source: "mcj smoke" },
    transcript: [
      { role: "AGENT", text: "Hello, thanks for calling Acme. How can I help?", startOffsetMs: 0, endOffsetMs: 3000 },
      { role: "CUSTOMER", text: "Hi, where is my order?", startOffsetMs: 3600, endOffsetMs: 6000 },
      { role: "AGENT", text: "It ships tomorrow morning.", startOffsetMs: 6800, endOffsetMs: 9000 },
      { role: "CUSTOMER", text: "Great, thank you.", startOffsetMs: 9500, endOffsetMs: 11000 },
    ],
  } as const;
}

const isStatus = (error: unknown, status: number) => error instanceof ApiError && error.status === status;

/** The smoke call: created once, found again by its externalId (a 409 names it). */
async function smokeCallId(client: Client): Promise<string> {
  try {
    return (await client.calls.create(smokeCall() as never)).id;
  } catch (error) {
    const existing = isStatus(error, 409) ? (error as ApiError).details : undefined;
    const callId = (existing as { callId?: string } | undefined)?.callId;
    if (callId) return callId;
    throw error;
  }
}

/** A smoke definition: read by slug, created when missing (another run may create it first). */
async function smokeMetricId(client: Client, definition: (typeof SMOKE_METRICS)[keyof typeof SMOKE_METRICS]) {
  const get = () => client.metrics.get(definition.slug).then((m) => m.id);
  try {
    return await get();
  } catch (error) {
    if (!isStatus(error, 404)) throw error;
  }
  try {
    return (await client.metrics.create(definition as never)).id;
  } catch (error) {
    if (isStatus(error, 409)) return get();
    throw error;
  }
}

interface WebhookReceiver {
  /** The first delivery about `jobId`, within the timeout. */
  deliveryFor(jobId: string, timeoutMs: number): Promise<{ headers: Record<string, string>; body: string }>;
  close(): Promise<void>;
}

async function listenForWebhooks(port: number): Promise<WebhookReceiver> {
  const deliveries: { headers: Record<string, string>; body: string }[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
      deliveries.push({ headers, body: Buffer.concat(chunks).toString("utf8") });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  return {
    async deliveryFor(jobId, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = deliveries.find((d) => d.body.includes(`"id":"${jobId}"`));
        if (found) return found;
        check(Date.now() < deadline, `no webhook about job ${jobId} arrived within ${timeoutMs / 1000} s`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function checkValues(client: Client, job: Job, metricIds: { turns: string; greeting: string }) {
  const values = [];
  for await (const group of client.jobs.values(job.id, { status: "all" })) values.push(...group.values);
  check(values.length === 2, `expected 2 values, read ${values.length}`);
  const turns = values.find((v) => v.metricDefinitionId === metricIds.turns);
  const greeting = values.find((v) => v.metricDefinitionId === metricIds.greeting);
  check(turns?.captureStatus === "SUCCESS", `turn count: ${turns?.captureStatus} ${turns?.errorMessage ?? ""}`);
  check(turns.value === SMOKE_TURNS, `turn count is ${String(turns.value)}, expected ${SMOKE_TURNS}`);
  check(greeting?.captureStatus === "SUCCESS", `LLM judge: ${greeting?.captureStatus} ${greeting?.errorMessage ?? ""}`);
  check(typeof greeting.value === "boolean", `LLM judge answered ${JSON.stringify(greeting.value)}, not a boolean`);
  return { turns: turns.value, greeting: greeting.value, model: greeting.model ?? "" };
}

/** Runs every step, printing one line per step; the exit code says whether all passed. */
export async function smoke(client: Client, options: SmokeOptions, io: Io): Promise<number> {
  const timeoutMs = options.timeoutMs ?? 300_000;
  const started = Date.now();
  const step = (message: string) =>
    io.stdout.write(`ok   ${message} (${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
  let receiver: WebhookReceiver | undefined;
  try {
    const spec = await client.request("getOpenApi", {});
    step(`API answers (OpenAPI ${spec.openapi}) at ${client.baseURL}`);
    const callId = await smokeCallId(client);
    step(`call ${callId} stored (externalId ${SMOKE_EXTERNAL_ID})`);
    const metricIds = {
      turns: await smokeMetricId(client, SMOKE_METRICS.turns),
      greeting: await smokeMetricId(client, SMOKE_METRICS.greeting),
    };
    step(`metric definitions ${SMOKE_METRICS.turns.slug} and ${SMOKE_METRICS.greeting.slug} ready`);
    if (options.webhookUrl) receiver = await listenForWebhooks(options.webhookPort ?? 8787);

    const job = await client.jobs.createAndWait(
      {
        callIds: [callId],
        metrics: [{ id: metricIds.turns }, { id: metricIds.greeting }],
        metadata: { source: "mcj smoke" },
        ...(options.webhookUrl ? { webhookUrl: options.webhookUrl } : {}),
      },
      { intervalMs: 500, maxIntervalMs: 3_000, timeoutMs },
    );
    check(
      job.status === "COMPLETED" && job.completedItems === 2 && job.failedItems === 0,
      `job ${job.id} ended ${job.status} with ${job.completedItems} completed and ${job.failedItems} failed items`,
    );
    step(`job ${job.id} COMPLETED, 2 of 2 items`);
    const values = await checkValues(client, job, metricIds);
    step(`values read: ${values.turns} turns, greeting ${values.greeting} (${values.model})`);

    if (receiver && options.webhookUrl) {
      const { secret } = await client.webhookSecret.get();
      const delivery = await receiver.deliveryFor(job.id, Math.min(timeoutMs, 120_000));
      const signed = verifyWebhook(
        secret,
        {
          id: delivery.headers["x-webhook-id"] ?? "",
          timestamp: delivery.headers["x-webhook-timestamp"] ?? "",
          signature: delivery.headers["x-webhook-signature"] ?? "",
        },
        delivery.body,
      );
      check(signed, "the webhook's signature does not match the organization's webhook secret");
      step(`webhook ${delivery.headers["x-webhook-id"]} arrived at ${options.webhookUrl}, signature valid`);
    }
    io.stdout.write(`smoke test passed: the call and definitions are kept for the next run; job ${job.id} stays\n`);
    return EXIT.ok;
  } catch (error) {
    // API errors keep their own exit code; anything else (a check, a wait that timed out) fails the test.
    if (error instanceof ApiError || error instanceof ApiConnectionError || !(error instanceof Error)) throw error;
    io.stderr.write(`FAIL ${error.message}\n`);
    return EXIT.failed;
  } finally {
    await receiver?.close();
  }
}
