/**
 * Zod schemas of what the API answers. With the request schemas they form the API contract
 * (shared/http/contract.ts) that the OpenAPI document, the SDK types and the contract tests
 * come from. The type checks at the bottom keep them in step with the store's interfaces.
 */
import { z } from "zod";
import { auditActions } from "./audit.ts";
import type { Backfill } from "./backfill.ts";
import { createBackfillSchema } from "./backfill.ts";
import type { Call } from "./call.ts";
import { createCallSchema, toolInvocationSchema, transcriptSegmentSchema } from "./call.ts";
import type { CollectionJob, MetricValue } from "./job.ts";
import { captureStatuses, jobStatuses, judgeModes, llmModes } from "./job.ts";
import type { MetricDefinition } from "./metric.ts";
import { createMetricSchema, outputTypes } from "./metric.ts";
import { organizationSettingsSchema } from "./organization.ts";
import type { MetricPolicy } from "./policy.ts";
import { createPolicySchema } from "./policy.ts";
import { roles } from "./role.ts";

const timestamp = z.string().min(1);

export const errorBodySchema = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    /** For validation errors: `[{field, message}]`; for conflicts: what conflicts. */
    details: z.unknown().optional(),
  }),
});

export const paginationSchema = z.object({ hasMore: z.boolean(), nextCursor: z.string().nullable() });

/** How a route's answer is wrapped: `{data}` around one value, or `{data, pagination}` around a page. */
export type Envelope = "data" | "page";
const envelopes = new WeakMap<z.ZodType, Envelope>();

function enveloped<T extends z.ZodType>(schema: T, envelope: Envelope): T {
  envelopes.set(schema, envelope);
  return schema;
}

export const dataOf = <T extends z.ZodType>(schema: T) => enveloped(z.object({ data: schema }), "data");
export const pageOf = <T extends z.ZodType>(schema: T) =>
  enveloped(z.object({ data: z.array(schema), pagination: paginationSchema }), "page");
/** The envelope a response schema built by `dataOf` or `pageOf` declares. */
export const envelopeOf = (schema: z.ZodType | undefined): Envelope | undefined =>
  schema ? envelopes.get(schema) : undefined;

export const tokenUsageSchema = z.object({
  inputTokens: z.number(),
  outputTokens: z.number(),
  cacheCreationInputTokens: z.number(),
  cacheReadInputTokens: z.number(),
  /** Of outputTokens, those spent thinking; absent on values stored before it was recorded. */
  thinkingTokens: z.number().optional(),
});

// ---- calls

const callShape = createCallSchema.shape;
export const callSummarySchema = z.object({
  id: z.string(),
  externalId: callShape.externalId,
  agentId: z.string(),
  environmentId: callShape.environmentId,
  callDirection: z.enum(["INBOUND", "OUTBOUND"]),
  interfaceType: z.enum(["PHONE", "WEB"]),
  startedAt: timestamp,
  endedAt: timestamp.optional(),
  durationMs: z.number().optional(),
  properties: z.record(z.string(), z.string()),
  segmentCount: z.number().int(),
  createdAt: timestamp,
});

export const callSchema = callSummarySchema.omit({ segmentCount: true }).extend({
  transcript: z.array(transcriptSegmentSchema),
  toolInvocations: z.array(toolInvocationSchema).optional(),
});

// ---- metric definitions

export const metricDefinitionSchema = z.object({
  ...createMetricSchema.shape,
  id: z.string(),
  version: z.number().int(),
  description: z.string(),
  supportedContexts: z.array(z.enum(["CALL", "SEGMENT"])),
  createdAt: timestamp,
  updatedAt: timestamp,
  archivedAt: timestamp.optional(),
});

// ---- jobs and values

export const frozenMetricSchema = z.object({
  id: z.string(),
  version: z.number().int(),
  slug: z.string(),
  name: z.string(),
});

export const webhookDeliverySchema = z.object({
  id: z.string(),
  status: z.enum(["pending", "delivered", "failed"]),
  attempts: z.number().int(),
  queuedAt: timestamp,
  lastAttemptAt: timestamp.optional(),
  lastResponseCode: z.number().int().optional(),
  lastError: z.string().optional(),
  deliveredAt: timestamp.optional(),
});

export const collectionJobSchema = z.object({
  id: z.string(),
  status: z.enum(jobStatuses),
  triggeredBy: z.enum(["API", "METRIC_POLICY", "SCHEDULE", "RETRY"]),
  totalItems: z.number().int(),
  completedItems: z.number().int(),
  failedItems: z.number().int(),
  callCount: z.number().int(),
  metrics: z.array(frozenMetricSchema),
  judgeMode: z.enum(judgeModes),
  llmMode: z.enum(llmModes),
  /** Items handed to the Message Batches API whose results are not in yet (batch mode). */
  itemsWaitingOnProvider: z.number().int().optional(),
  startedAt: timestamp.optional(),
  completedAt: timestamp.optional(),
  canceledAt: timestamp.optional(),
  expiresAt: timestamp.optional().describe("A job still running then ends EXPIRED (created with expiresInSeconds)"),
  expiredAt: timestamp.optional(),
  notRunItems: z
    .number()
    .int()
    .optional()
    .describe("CANCELED or EXPIRED: the items it never ran (totalItems − completedItems − failedItems)"),
  errorMessage: z.string().optional(),
  webhookUrl: z.string().optional(),
  webhookProgress: z.literal(true).optional().describe("It sends progress events at each tenth of its items"),
  webhookSigning: z.literal("job").optional().describe("Its webhook is signed with a secret of its own"),
  maxCostUsd: z
    .number()
    .optional()
    .describe("The cost cap the job's model calls stop at (its own, or the organization's maxJobCostUsd)"),
  webhook: webhookDeliverySchema.optional(),
  /** Summed LLM token usage of the job's recorded values (LLM-judged metrics only). */
  usage: tokenUsageSchema.optional(),
  estimatedCostUsd: z.number().optional(),
  policyIds: z.array(z.string()),
  metadata: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
  createdAt: timestamp,
  updatedAt: timestamp,
});

/** The creation answer: the job, and its own webhook secret when it asked for one (shown only here). */
export const createdJobSchema = collectionJobSchema.extend({
  webhookSecret: z
    .string()
    .optional()
    .describe("With webhookSigning: job, the secret its webhook is signed with; shown only in this answer"),
});

const costRangeSchema = z.object({ low: z.number(), high: z.number() }).describe("USD");
export const jobEstimateSchema = z.object({
  calls: z.number().int(),
  items: z.number().int(),
  llmItems: z.number().int().describe("Items an LLM judges"),
  judgeMode: z.enum(judgeModes),
  llmMode: z.enum(llmModes),
  metrics: z.array(
    z.object({
      metricDefinitionId: z.string(),
      slug: z.string(),
      model: z.string().optional(),
      items: z.number().int(),
      estimatedCostUsd: costRangeSchema,
    }),
  ),
  estimatedCostUsd: costRangeSchema.describe("The whole job, in its judgeMode and llmMode"),
  byMode: z.array(
    z.object({ judgeMode: z.enum(judgeModes), llmMode: z.enum(llmModes), estimatedCostUsd: costRangeSchema }),
  ),
  unpricedModels: z.array(z.string()).describe("Models the price table does not know: their cost counts as 0"),
});

export const segmentRefSchema = z.object({
  id: z.string(),
  text: z.string(),
  startOffsetMs: z.number(),
  endOffsetMs: z.number(),
});

export const metricValueSchema = z.object({
  jobId: z.string(),
  callId: z.string(),
  metricDefinitionId: z.string(),
  metricVersion: z.number().int(),
  captureStatus: z.enum(captureStatuses),
  computedAt: timestamp,
  context: z.enum(["CALL", "SEGMENT", "SEGMENT_RANGE"]),
  value: z.union([z.number(), z.string(), z.boolean(), z.array(z.string())]).optional(),
  valueReasoning: z.string().optional(),
  confidence: z.number().min(0).max(1).optional(),
  errorMessage: z.string().optional(),
  /** The transcript segment the value rests on (one), or the range fromSegment..toSegment. */
  segment: segmentRefSchema.optional(),
  fromSegment: segmentRefSchema.optional(),
  toSegment: segmentRefSchema.optional(),
  policyIds: z.array(z.string()).optional(),
  model: z.string().optional(),
  usage: tokenUsageSchema.optional(),
  estimatedCostUsd: z.number().optional(),
  /** A person's verdict (PUT …/review); `value` stays the judge's. */
  reviewedValue: z.union([z.number(), z.string(), z.boolean(), z.array(z.string())]).optional(),
  /** The API key that reviewed it. */
  reviewedBy: z.string().optional(),
  reviewedAt: timestamp.optional(),
  reviewNote: z.string().optional(),
});

export const jobMetricValuesSchema = z.object({
  metricDefinitionId: z.string(),
  slug: z.string(),
  /** `<slug>@<version>`. */
  metricId: z.string(),
  name: z.string(),
  description: z.string(),
  type: z.enum(outputTypes).optional(),
  unit: z.object({ name: z.string(), symbol: z.string() }).optional(),
  values: z.array(metricValueSchema),
});

/** A playground evaluation: a metric value that was not stored (no job). */
export const playgroundResultSchema = metricValueSchema.omit({ jobId: true, policyIds: true });

/** One call judged with several metrics in both judge modes. */
export const judgeModeComparisonSchema = z.object({
  callId: z.string(),
  metrics: z.array(
    z.object({
      slug: z.string(),
      isolated: playgroundResultSchema,
      grouped: playgroundResultSchema,
      sameAnswer: z.boolean(),
    }),
  ),
  usage: z.object({ isolated: tokenUsageSchema, grouped: tokenUsageSchema }),
  estimatedCostUsd: z.object({ isolated: z.number(), grouped: z.number() }),
});

// ---- policies, backfills, webhooks

export const metricPolicySchema = z.object({
  ...createPolicySchema.shape,
  status: z.enum(["ACTIVE", "INACTIVE"]),
  conditions: createPolicySchema.shape.conditions.unwrap(),
  id: z.string(),
  createdAt: timestamp,
  updatedAt: timestamp,
});

export const backfillRunSchema = z.object({
  at: timestamp,
  trigger: z.enum(["schedule", "manual"]),
  status: z.enum(["started", "nothing-to-do", "skipped"]),
  jobId: z.string().optional(),
  items: z.number().int(),
  cutoff: timestamp,
  errorMessage: z.string().optional(),
});

export const backfillSchema = z.object({
  ...createBackfillSchema.shape,
  callFilter: createBackfillSchema.shape.callFilter.unwrap(),
  onlyMissing: z.boolean(),
  status: z.enum(["ACTIVE", "INACTIVE"]),
  id: z.string(),
  nextRunAt: timestamp.optional(),
  lastJobId: z.string().optional(),
  lastRun: backfillRunSchema.optional(),
  createdAt: timestamp,
  updatedAt: timestamp,
});

export const deletedSchema = z.object({ id: z.string(), deleted: z.literal(true) });

export const webhookSecretSchema = z.object({ secret: z.string(), createdAt: timestamp });
/** An API key as listed: never its secret, which is shown once, at creation. */
export const apiKeySchema = z.object({
  id: z.string().describe("The key's non-secret id (the start of its hash)"),
  name: z.string(),
  role: z.enum(roles),
  createdAt: timestamp,
  createdBy: z.string().optional().describe("Id of the admin key that created it"),
  revokedAt: timestamp.optional(),
  revokedBy: z.string().optional(),
});
export const createdApiKeySchema = apiKeySchema.extend({
  apiKey: z.string().describe("The secret: shown only in this answer, stored only as a hash"),
});

export const auditEventSchema = z.object({
  id: z.string(),
  at: timestamp,
  action: z.enum(auditActions),
  resourceId: z.string().optional(),
  keyId: z.string().describe("The key that made the change"),
  role: z.enum(roles),
  requestId: z.string().optional().describe("API Gateway's request id, as in its access log"),
});

export const organizationSchema = z.object({
  id: z.string(),
  name: z.string(),
  settings: organizationSettingsSchema,
  spend: z
    .object({
      month: z.string().describe("yyyy-mm, UTC"),
      costUsd: z.number().describe("What its LLM calls cost this month: jobs' answers and playground runs"),
      remainingBudgetUsd: z.number().optional().describe("What is left of settings.monthlyBudgetUsd"),
    })
    .optional(),
  createdAt: timestamp,
});

/** The API key in use: its organization, role and (non-secret) id. */
export const principalSchema = z.object({ orgId: z.string(), role: z.enum(roles), keyId: z.string() });

// ---- analytics (/v1/custom-metrics/*)

const labelsSchema = z.record(z.string(), z.string());
/** With stats=true: a metric's statistics, named; `value` is what the plain answer gives. */
const metricStatsSchema = z.object({
  value: z.number(),
  aggregation: z.enum(["sum", "avg", "p95", "count"]).describe("How `value` is computed for the metric's type"),
  count: z.number().describe("SUCCESS values counted"),
  sum: z.number().optional().describe("Numeric types (BOOLEAN counts true as 1)"),
  average: z.number().optional(),
  p95: z.number().optional().describe("Metrics with histogram: true (within ±1 %)"),
  passRate: z.number().optional().describe("BOOLEAN: true ÷ count"),
  labels: z
    .record(z.string(), z.number())
    .optional()
    .describe("CLASSIFICATION: values carrying each label (a value may carry several)"),
});
const metricsByNameSchema = z.union([z.record(z.string(), z.number()), z.record(z.string(), metricStatsSchema)]);

export const aggregateResultSchema = z.union([
  metricsByNameSchema,
  /** With groupBy: one entry per group, its labels next to `metrics`. */
  z.array(z.object({ metrics: metricsByNameSchema }).catchall(z.string())),
]);
/** With groupBy: one entry per day and group, its labels next to `date` and `metrics`. */
export const dailyResultSchema = z.array(
  z.object({ date: z.string(), metrics: metricsByNameSchema }).catchall(z.string()),
);
export const timeseriesResultSchema = z.object({
  resultType: z.literal("matrix"),
  result: z.array(z.object({ metric: labelsSchema, values: z.array(z.tuple([z.number(), z.string()])) })),
});
export const sessionResultSchema = z.object({
  resultType: z.literal("vector"),
  result: z.array(z.object({ metric: labelsSchema, value: z.tuple([z.number(), z.string()]) })),
});
export const tagsResultSchema = z.record(z.string(), z.array(z.string()));

// ---- the schemas above must accept what the store returns (compile-time checks)

type Accepts<Schema extends z.ZodType, Value extends z.input<Schema>> = Value;
export type ResponseSchemaChecks = [
  Accepts<typeof callSchema, Call>,
  Accepts<typeof metricDefinitionSchema, MetricDefinition>,
  Accepts<typeof collectionJobSchema, CollectionJob>,
  Accepts<typeof metricValueSchema, MetricValue>,
  Accepts<typeof metricPolicySchema, MetricPolicy>,
  Accepts<typeof backfillSchema, Backfill>,
];
