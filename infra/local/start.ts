/**
 * `npm start`: the whole service on this machine — DynamoDB Local, the SQS emulator, the
 * API and every worker from the wiring table — seeded with a demo organization.
 */
import { MIN_KEY_LENGTH } from "../../shared/auth.ts";
import { DEFAULT_JUDGE_MODEL } from "../../shared/config.ts";
import { createMetricSchema } from "../../shared/schemas/metric.ts";
import { createCall } from "../../shared/store/calls.ts";
import { createMetric } from "../../shared/store/metrics.ts";
import { createApiKey, createOrganization } from "../../shared/store/organizations.ts";
import { demoCalls, demoMetricDefinitions } from "./demo-data.ts";
import { startDynamoDbLocal, startSqsEmulator } from "./engines.ts";
import { type FakeAnthropic, startFakeAnthropic } from "./fake-anthropic.ts";
import { startLocalStack } from "./stack.ts";

const port = Number(process.env.PORT ?? 3000);
const devApiKey = process.env.DEV_API_KEY;
if (devApiKey !== undefined && devApiKey.length < MIN_KEY_LENGTH) {
  console.error(`DEV_API_KEY must be at least ${MIN_KEY_LENGTH} characters`);
  process.exit(1);
}

// Without a key, the judge talks to the fake Anthropic server: deterministic, free, offline.
const realAnthropic = Boolean(process.env.ANTHROPIC_API_KEY);
/** `FAKE_ANTHROPIC_RATE_LIMITS=50,30000,8000`: requests, input and output tokens per minute per model. */
function fakeRateLimits(spec: string | undefined) {
  if (!spec) return undefined;
  const numbers = spec.split(",").map(Number);
  const [requestsPerMinute, inputTokensPerMinute, outputTokensPerMinute] = numbers;
  if (numbers.length !== 3 || !numbers.every((n) => Number.isInteger(n) && n > 0)) {
    throw new Error(`FAKE_ANTHROPIC_RATE_LIMITS takes requests,input tokens,output tokens per minute; got "${spec}"`);
  }
  return { requestsPerMinute, inputTokensPerMinute, outputTokensPerMinute };
}
const fakeAnthropic: FakeAnthropic | undefined = realAnthropic
  ? undefined
  : await startFakeAnthropic({
      latencyMs: Number(process.env.FAKE_ANTHROPIC_LATENCY_MS ?? 300),
      rateLimits: fakeRateLimits(process.env.FAKE_ANTHROPIC_RATE_LIMITS),
    });
const dynamodb = await startDynamoDbLocal();
const sqsEmulator = await startSqsEmulator();
const stack = await startLocalStack({
  dynamodbEndpoint: dynamodb.endpoint,
  sqsEndpoint: sqsEmulator.endpoint,
  tableName: "mcj-local",
  queuePrefix: "mcj-local",
  port,
  // Short timeouts so a failed item is retried within seconds while you watch.
  queueOverrides: { work: { visibilityTimeoutSeconds: 30 }, dispatch: { visibilityTimeoutSeconds: 30 } },
  env: {
    RETRY_BASE_DELAY_SECONDS: "2",
    RETRY_MAX_DELAY_SECONDS: "30",
    // Local development: webhooks may go to a receiver on this machine.
    WEBHOOK_ALLOW_LOOPBACK: "true",
    ...(fakeAnthropic ? { ANTHROPIC_BASE_URL: fakeAnthropic.url, ANTHROPIC_API_KEY: "fake-anthropic-key" } : {}),
  },
});

let stopping = false;
async function shutdown(): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log("\nStopping…");
  await stack.stop().catch(() => {});
  await sqsEmulator.stop().catch(() => {});
  await dynamodb.stop().catch(() => {});
  await fakeAnthropic?.stop().catch(() => {});
  process.exit(0);
}
process.on("SIGINT", shutdown);
process.on("SIGTERM", shutdown);

const { orgId } = await createOrganization("Demo Organization", "demo");
const { apiKey } = await createApiKey(orgId, { role: "admin", name: "demo admin", apiKey: devApiKey });
const calls = await Promise.all(demoCalls().map((call) => createCall(orgId, call)));
const metrics = [];
for (const definition of demoMetricDefinitions()) {
  metrics.push(await createMetric(orgId, createMetricSchema.parse(definition)));
}

const base = stack.baseUrl;
const auth = `-H "Authorization: Bearer ${apiKey}"`;
const callIds = JSON.stringify(calls.map((call) => call.id));
const metricIds = JSON.stringify(
  ["agent-talk-ratio", "identity-verified", "empathy", "call-reason"].map((slug) => ({ id: slug })),
);
const judge = fakeAnthropic
  ? `LLM judge: SIMULATED — ANTHROPIC_API_KEY is not set, so LLM_JUDGE metrics are answered by the fake
  Anthropic server at ${fakeAnthropic.url} (deterministic keyword rules, not real judgments).
  Set ANTHROPIC_API_KEY to judge with Claude.`
  : `LLM judge: Anthropic API (ANTHROPIC_API_KEY is set; default model ${process.env.JUDGE_MODEL || DEFAULT_JUDGE_MODEL}).`;
console.log(`
Metric collection service running at ${base}
  DynamoDB Local ${dynamodb.endpoint} · SQS emulator ${sqsEmulator.endpoint}
  Demo organization '${orgId}': ${calls.length} calls, ${metrics.length} metric definitions (${metrics.map((m) => m.slug).join(", ")})

${judge}

Admin API key (demo org): ${apiKey}

Try it:
  curl -s ${auth} ${base}/v1/call?limit=5
  curl -s ${auth} ${base}/v1/metric/definitions
  curl -s ${auth} -H "content-type: application/json" -X POST ${base}/v1/metric/collection-jobs \\
    -d '{"callIds": ${callIds}, "metrics": ${metricIds}}'
  curl -s ${auth} ${base}/v1/metric/collection-jobs/<jobId>
  curl -s ${auth} ${base}/v1/metric/collection-jobs/<jobId>/metric-values
  curl -s ${auth} -H "content-type: application/json" -X POST ${base}/v1/metric/playground \
    -d '{"callId": "${calls[0]?.id}", "metric": {"id": "empathy"}}'

Another key: DYNAMODB_ENDPOINT=${dynamodb.endpoint} TABLE_NAME=mcj-local npm run create-api-key -- --org-name "Acme"
Ctrl-C stops everything.
`);
