/** The benchmark's calls and metrics, stored in bulk: set-up, not measured. */
import type { CreateCallInput } from "../shared/schemas/call.ts";
import { createMetricSchema, type MetricDefinition } from "../shared/schemas/metric.ts";
import { batchPut } from "../shared/store/batch-write.ts";
import { callItems } from "../shared/store/calls.ts";
import { createMetric } from "../shared/store/metrics.ts";

const SENTENCES = [
  "Thanks for calling, this is Ava from customer care, how can I help you today?",
  "Hi, I was charged twice for my subscription this month and I would like a refund.",
  "I'm sorry about that. Before we continue I need to verify your identity, can you confirm your date of birth?",
  "Sure, it is the fourth of March nineteen eighty seven, and the account is under my name.",
  "Thank you, I can see the duplicate billing charge from the twelfth and I will issue a refund right away.",
  "How long will it take for the money to show up on my card statement?",
  "Refunds usually take three to five business days depending on your bank.",
  "Great, and can you make sure this does not happen again next month?",
  "I have added a note to the account and switched off the duplicate payment method.",
  "Perfect, thank you so much for your help today.",
];

/** A support call of about `tokens` tokens (4 characters each) with alternating speakers. */
function benchCall(index: number, tokens: number): CreateCallInput {
  const transcript: CreateCallInput["transcript"] = [];
  let chars = 0;
  let offset = 0;
  for (let i = 0; chars < tokens * 4; i++) {
    const text = `${SENTENCES[(i + index) % SENTENCES.length]} (${index}.${i})`;
    const duration = text.split(" ").length * 400;
    transcript.push({
      role: i % 2 ? "CUSTOMER" : "AGENT",
      text,
      startOffsetMs: offset,
      endOffsetMs: offset + duration,
    });
    offset += duration + 600;
    chars += text.length + 30;
  }
  return {
    agentId: `agent-${index % 5}`,
    callDirection: "INBOUND",
    interfaceType: "PHONE",
    startedAt: new Date(Date.UTC(2026, 10, 1) + index * 60_000).toISOString(),
    durationMs: offset,
    properties: { region: index % 2 ? "EU" : "US" },
    transcript,
  };
}

/** Stores calls as `POST /v1/call` does (the same items), in bulk. */
export async function seedCalls(orgId: string, count: number, tokens: number): Promise<string[]> {
  const built = Array.from({ length: count }, (_, index) => callItems(orgId, benchCall(index, tokens)));
  await batchPut(
    built.flatMap(({ callItem, chunkItems }) => [callItem, ...chunkItems]),
    { requestsInFlight: 8 },
  );
  return built.map(({ callItem }) => String(callItem.id));
}

const judgedMetric = (slug: string, outputType: string, llmPrompt: string, extra: object = {}) =>
  createMetricSchema.parse({ slug, name: slug, calculationType: "LLM_JUDGE", outputType, llmPrompt, ...extra });

/** `count` LLM metrics, one of each output type in turn. */
export async function seedMetrics(orgId: string, prefix: string, count: number): Promise<MetricDefinition[]> {
  const templates = [
    () => judgedMetric(`${prefix}-refund`, "BOOLEAN", 'Did the customer ask for a "refund"?'),
    () =>
      judgedMetric(`${prefix}-empathy`, "SCALE", 'How empathetic was the agent ("sorry")?', {
        scaleMin: 1,
        scaleMax: 5,
      }),
    () =>
      judgedMetric(`${prefix}-reason`, "CLASSIFICATION", "Why did the customer call?", {
        classificationOptions: ["billing", "refund", "technical", "other"],
        maxClassifications: 2,
      }),
    () => judgedMetric(`${prefix}-verify`, "COUNT", 'In how many turns is the "date of birth" discussed?'),
    () => judgedMetric(`${prefix}-summary`, "TEXT", 'What did the agent say about the "refund"?'),
  ];
  const metrics: MetricDefinition[] = [];
  for (let i = 0; i < count; i++) {
    const definition = templates[i % templates.length]?.() as ReturnType<typeof judgedMetric>;
    metrics.push(await createMetric(orgId, { ...definition, slug: `${definition.slug}-${i}` }));
  }
  return metrics;
}
