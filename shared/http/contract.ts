/**
 * The API contract: per route key ("POST /v1/call") the zod schemas that validate its
 * request (body, query, path) and describe its success response, plus its summary, role
 * and success status. Handlers take their schemas from here (`apiRoute(contract[key], …)`),
 * the OpenAPI document (shared/http/openapi.ts) is generated from here, the SDK types are
 * generated from that document, and the contract tests check real responses against it —
 * one source of truth.
 */
import { z } from "zod";
import { type Role, roles } from "../auth.ts";
import {
  customMetricNamesQuerySchema,
  customMetricTagsQuerySchema,
  rangeQuerySchema,
  timeseriesQuerySchema,
} from "../schemas/analytics.ts";
import { createApiKeySchema } from "../schemas/api-key.ts";
import type { AuditAction } from "../schemas/audit.ts";
import { createBackfillSchema, updateBackfillSchema } from "../schemas/backfill.ts";
import { createCallBodySchema, createCallSchema, inlineMessageSchema } from "../schemas/call.ts";
import { createIntegrationSchema, integrationSchema, updateIntegrationSchema } from "../schemas/integration.ts";
import { createJobSchema, jobStatuses, MAX_METRICS_PER_JOB } from "../schemas/job.ts";
import { createMetricBodySchema, updateMetricSchema } from "../schemas/metric.ts";
import { organizationSettingsSchema } from "../schemas/organization.ts";
import { createPolicySchema, updatePolicySchema } from "../schemas/policy.ts";
import { recordValuesBodySchema, recordValuesResultSchema } from "../schemas/recorded.ts";
import {
  aggregateResultSchema,
  apiKeySchema,
  auditEventSchema,
  backfillRunSchema,
  backfillSchema,
  callSchema,
  callSummarySchema,
  collectionJobSchema,
  createdApiKeySchema,
  createdJobSchema,
  dailyResultSchema,
  dataOf,
  deletedSchema,
  jobEstimateSchema,
  jobMetricValuesSchema,
  judgeModeComparisonSchema,
  metricDefinitionSchema,
  metricPolicySchema,
  metricValueSchema,
  organizationSchema,
  pageOf,
  playgroundResultSchema,
  principalSchema,
  sessionResultSchema,
  tagsResultSchema,
  timeseriesResultSchema,
  webhookSecretSchema,
} from "../schemas/responses.ts";
import { agreementSchema, reviewSchema } from "../schemas/review.ts";
import type { Access, RouteThrottle } from "../wiring.ts";
import { pageQuerySchema } from "./pagination.ts";

export interface RouteContract {
  /** The file in functions/api/ that serves the route (without `.ts`); it passes this entry to apiRoute. */
  handler: string;
  /** What the route's function may touch; reading the table unless said otherwise. */
  access?: Access;
  timeoutSeconds?: number;
  /** API Gateway's throttle for this route alone (expensive routes); the stage's otherwise. */
  throttle?: RouteThrottle;
  summary: string;
  description?: string;
  /** Groups operations in the document (OpenAPI tags). */
  tag: string;
  /** Stable operation id; the SDK method names follow it. */
  operationId: string;
  body?: z.ZodType;
  query?: z.ZodType;
  path?: z.ZodType;
  /** The success body. */
  response: z.ZodType;
  successStatus?: number;
  /** The roles of the keys the route serves (403 for others); every route needs a key unless `public`. */
  roles: readonly Role[];
  /** Served without an API key. */
  public?: boolean;
  /** An organization setting that, when true, narrows the route to admin keys (403 for others). */
  adminOnlyWhen?: "analyticsAdminOnly";
  /** A change the audit trail records (GET /v1/audit-events). */
  audit?: AuditAction;
  /** Creates something: a client may send an Idempotency-Key to make retries safe. */
  idempotent?: boolean;
}

/** Every key may read; members and admins change things; only admins manage keys and secrets. */
const anyRole = roles;
const writers: readonly Role[] = ["admin", "member"];
const admins: readonly Role[] = ["admin"];

const idParam = <K extends string>(name: K) => z.object({ [name]: z.string().min(1) } as Record<K, z.ZodString>);
/** `properties={"region":"EU"}`: calls whose properties have all these values. */
const callPropertiesFilter = z
  .string()
  .optional()
  .transform((text, context) => {
    if (text === undefined) return undefined;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    const result = z.record(z.string(), z.string()).safeParse(parsed);
    if (!result.success) {
      context.addIssue({
        code: "custom",
        message: 'properties must be a JSON object of strings, e.g. {"region":"EU"}',
      });
      return z.NEVER;
    }
    return result.data;
  });

/** As Roark's: only successfully computed values unless a client asks for every row. */
const valueStatusQuery = z
  .enum(["success", "all"])
  .describe(
    "success (the default) returns only values computed successfully; all also returns the NOT_APPLICABLE, DATA_MISSING and ERROR rows, without a value",
  )
  .default("success");

/** `{id}` (id or slug) of a saved definition, or a whole definition to try before saving it. */
const playgroundMetricSchema = z.record(z.string(), z.unknown());

/** The call a playground run judges: a stored one, or a transcript sent inline and never stored. */
const playgroundCallFields = {
  callId: z.string().trim().min(1).max(256).optional().describe("A stored call"),
  call: createCallSchema.optional().describe("A whole call, as POST /v1/call takes it, judged without storing it"),
  messages: z
    .array(inlineMessageSchema)
    .min(1)
    .max(10_000)
    .optional()
    .describe("A transcript's messages, in order (one synthetic second each), judged without storing them"),
  message: z.string().trim().min(1).max(100_000).optional().describe("One customer message"),
};
const oneCallGiven = (body: Record<string, unknown>, context: z.RefinementCtx) => {
  const given = Object.keys(playgroundCallFields).filter((field) => body[field] !== undefined);
  if (given.length !== 1) {
    context.addIssue({
      code: "custom",
      path: [given[1] ?? "callId"],
      message: "send exactly one of callId, call, messages or message",
    });
  }
};

const playgroundBodySchema = z
  .strictObject({ ...playgroundCallFields, metric: playgroundMetricSchema })
  .superRefine(oneCallGiven);

const judgeModesBodySchema = z
  .strictObject({ ...playgroundCallFields, metrics: z.array(playgroundMetricSchema).min(1).max(MAX_METRICS_PER_JOB) })
  .superRefine(oneCallGiven);

/** Roark's import bodies: a platform's own payload, custom properties, and whether a stored call is fine. */
const platformImportSchema = (field: string, what: string) =>
  z.strictObject({
    [field]: z.record(z.string(), z.unknown()).describe(what),
    properties: z
      .record(z.string(), z.unknown())
      .optional()
      .describe("Added to the call's properties (flattened to strings; the payload's own win on a clash)"),
    skipAlreadyImported: z
      .boolean()
      .optional()
      .describe("A call already stored with the payload's call id answers 200 with that call instead of 409"),
  });

export const contract = {
  "GET /openapi.json": {
    roles: anyRole,
    handler: "get-openapi",
    access: {},
    summary: "This API's OpenAPI document",
    tag: "meta",
    operationId: "getOpenApi",
    response: z.record(z.string(), z.unknown()),
    public: true,
  },

  // ---- calls
  "POST /v1/call": {
    roles: writers,
    idempotent: true,
    handler: "create-call",
    access: { table: "readWrite" },
    summary: "Store a call",
    description:
      "409 on a duplicate externalId (details name the existing call); 413 when the transcript is too large.",
    tag: "calls",
    operationId: "createCall",
    body: createCallBodySchema,
    response: dataOf(
      callSummarySchema.extend({
        customMetrics: recordValuesResultSchema.optional().describe("What became of the body's customMetrics"),
      }),
    ),
    successStatus: 201,
  },
  "POST /v1/vapi/call": {
    roles: writers,
    idempotent: true,
    handler: "import-vapi-call",
    access: { table: "readWrite" },
    summary: "Store a call from Vapi's end-of-call report (Roark's import route)",
    description:
      "The report as Vapi posted it, mapped as an integration maps it (docs/api.md, Integrations). 409 when its call is stored already (details name it), unless skipAlreadyImported: then the answer is that call.",
    tag: "calls",
    operationId: "importVapiCall",
    body: platformImportSchema("vapiEndOfCallReportPayload", "Vapi's end-of-call-report webhook body"),
    response: dataOf(callSummarySchema),
    successStatus: 201,
  },
  "POST /v1/retell/call": {
    roles: writers,
    idempotent: true,
    handler: "import-retell-call",
    access: { table: "readWrite" },
    summary: "Store a call from Retell's call_ended webhook (Roark's import route)",
    description:
      "The webhook body as Retell posted it (or its `call`), mapped as an integration maps it (docs/api.md, Integrations). 409 when its call is stored already (details name it), unless skipAlreadyImported: then the answer is that call.",
    tag: "calls",
    operationId: "importRetellCall",
    body: platformImportSchema("retellCallEndedPayload", "Retell's call_ended (or call_analyzed) webhook body"),
    response: dataOf(callSummarySchema),
    successStatus: 201,
  },
  "GET /v1/call": {
    roles: anyRole,
    handler: "list-calls",
    summary: "List calls, newest first (no transcripts); or the one call stored with an externalId",
    tag: "calls",
    operationId: "listCalls",
    query: pageQuerySchema(100, 20).extend({
      externalId: z.string().min(1).max(256).optional().describe("Your own id of a call, as given when storing it"),
      agentId: z.string().min(1).max(256).optional(),
      startedAfter: z.iso.datetime({ offset: true }).optional(),
      startedBefore: z.iso.datetime({ offset: true }).optional(),
      properties: callPropertiesFilter,
    }),
    response: pageOf(callSummarySchema),
  },
  "GET /v1/call/{callId}": {
    roles: anyRole,
    handler: "get-call",
    summary: "One call with its transcript",
    tag: "calls",
    operationId: "getCall",
    path: idParam("callId"),
    response: dataOf(callSchema),
  },
  "DELETE /v1/call/{callId}": {
    audit: "call.deleted",
    roles: writers,
    handler: "delete-call",
    access: { table: "readWrite" },
    summary: "Delete a call with its transcript and its values in every job (a data-subject request)",
    description:
      "Its values also leave the analytics within seconds; jobs keep their counters. A repeated delete answers the same. See docs/api.md#deleting-a-call.",
    tag: "calls",
    operationId: "deleteCall",
    path: idParam("callId"),
    response: dataOf(deletedSchema),
  },
  "GET /v1/call/{callId}/metrics": {
    roles: anyRole,
    handler: "list-call-metrics",
    summary: "Every metric value of a call, across jobs, grouped per metric definition as a job's values are",
    tag: "calls",
    operationId: "listCallMetrics",
    path: idParam("callId"),
    query: pageQuerySchema(500, 100).extend({ status: valueStatusQuery }),
    response: pageOf(jobMetricValuesSchema),
  },

  // ---- metric definitions
  "POST /v1/metric/definitions": {
    audit: "metric_definition.created",
    roles: writers,
    idempotent: true,
    handler: "create-metric-definition",
    access: { table: "readWrite" },
    summary: "Create a metric definition",
    description: "409 if the slug is taken.",
    tag: "metrics",
    operationId: "createMetricDefinition",
    body: createMetricBodySchema,
    response: dataOf(metricDefinitionSchema),
    successStatus: 201,
  },
  "GET /v1/metric/definitions": {
    roles: anyRole,
    handler: "list-metric-definitions",
    summary: "List metric definitions, newest first",
    tag: "metrics",
    operationId: "listMetricDefinitions",
    query: pageQuerySchema(100, 20).extend({
      archived: z.enum(["true", "false"]).optional().describe("`true`: the archived definitions instead"),
    }),
    response: pageOf(metricDefinitionSchema),
  },
  "GET /v1/metric/definitions/{idOrSlug}": {
    roles: anyRole,
    handler: "get-metric-definition",
    summary: "One metric definition (latest version)",
    tag: "metrics",
    operationId: "getMetricDefinition",
    path: idParam("idOrSlug"),
    response: dataOf(metricDefinitionSchema),
  },
  "POST /v1/metric/definitions/{idOrSlug}/archive": {
    audit: "metric_definition.archived",
    roles: writers,
    handler: "archive-metric-definition",
    access: { table: "readWrite" },
    summary: "Archive a metric definition",
    description:
      "It leaves the list (`?archived=true` lists it), new jobs, policies and backfills refuse it (400), and updates answer 409; jobs, policies and backfills that run it already go on. Its slug stays taken. Archiving twice keeps the first `archivedAt`.",
    tag: "metrics",
    operationId: "archiveMetricDefinition",
    path: idParam("idOrSlug"),
    response: dataOf(metricDefinitionSchema),
  },
  "POST /v1/metric/definitions/{idOrSlug}/unarchive": {
    audit: "metric_definition.unarchived",
    roles: writers,
    handler: "unarchive-metric-definition",
    access: { table: "readWrite" },
    summary: "Bring an archived metric definition back",
    tag: "metrics",
    operationId: "unarchiveMetricDefinition",
    path: idParam("idOrSlug"),
    response: dataOf(metricDefinitionSchema),
  },
  "GET /v1/metric/definitions/{idOrSlug}/versions": {
    roles: anyRole,
    handler: "list-metric-definition-versions",
    summary: "Every version of a metric definition, newest first",
    description:
      "Each update stores a new version and every version is kept; a job runs the version named in `metrics: [{id, version}]` (the latest by default).",
    tag: "metrics",
    operationId: "listMetricDefinitionVersions",
    path: idParam("idOrSlug"),
    query: pageQuerySchema(100, 20),
    response: pageOf(metricDefinitionSchema),
  },
  "GET /v1/metric/definitions/{idOrSlug}/agreement": {
    roles: anyRole,
    handler: "get-metric-agreement",
    summary: "How often the judge's values of a definition match reviewed values",
    description:
      "Accuracy (share of compared values equal to the reviewed one; labels in any order) for every output type, and the mean absolute error for NUMERIC, SCALE and COUNT; in all and per version.",
    tag: "metrics",
    operationId: "getMetricAgreement",
    path: idParam("idOrSlug"),
    response: dataOf(agreementSchema),
  },
  "PUT /v1/metric/definitions/{idOrSlug}": {
    audit: "metric_definition.updated",
    roles: writers,
    handler: "update-metric-definition",
    access: { table: "readWrite" },
    summary: "Update a metric definition",
    description: "A partial body merged into the current definition, stored as a new version.",
    tag: "metrics",
    operationId: "updateMetricDefinition",
    path: idParam("idOrSlug"),
    body: updateMetricSchema,
    response: dataOf(metricDefinitionSchema),
  },

  // ---- collection jobs
  "POST /v1/metric/collection-jobs": {
    roles: writers,
    idempotent: true,
    throttle: { ratePerSecond: 10, burst: 20 },
    handler: "create-collection-job",
    access: { table: "readWrite", sendTo: ["dispatch"] },
    summary: "Create a collection job (calls × metrics)",
    description: "Metrics by id or slug; unknown call or metric ids answer 400 naming them.",
    tag: "jobs",
    operationId: "createCollectionJob",
    body: createJobSchema,
    response: dataOf(createdJobSchema),
    successStatus: 201,
  },
  "POST /v1/metric/collection-jobs/estimate": {
    roles: anyRole,
    handler: "estimate-collection-job",
    summary:
      "What a job would cost: item counts and an estimated LLM cost range, per metric and in total, for each judging mode",
    description:
      "The body of POST /v1/metric/collection-jobs; nothing is created. Per metric: the job's own judgeMode and llmMode; byMode: all four. The range's ends are documented in docs/api.md.",
    tag: "jobs",
    operationId: "estimateCollectionJob",
    body: createJobSchema,
    response: dataOf(jobEstimateSchema),
  },
  "GET /v1/metric/collection-jobs": {
    roles: anyRole,
    handler: "list-collection-jobs",
    summary: "List collection jobs, newest first",
    tag: "jobs",
    operationId: "listCollectionJobs",
    query: pageQuerySchema(50, 20).extend({ status: z.enum(jobStatuses).optional() }),
    response: pageOf(collectionJobSchema),
  },
  "GET /v1/metric/collection-jobs/{jobId}": {
    roles: anyRole,
    handler: "get-collection-job",
    summary: "One collection job: status, counters, frozen metric versions, usage and cost",
    tag: "jobs",
    operationId: "getCollectionJob",
    path: idParam("jobId"),
    response: dataOf(collectionJobSchema),
  },
  "POST /v1/metric/collection-jobs/{jobId}/cancel": {
    roles: writers,
    handler: "cancel-collection-job",
    access: { table: "readWrite" },
    summary: "Cancel a pending or running job",
    description: "Idempotent; 409 once the job has finished.",
    tag: "jobs",
    operationId: "cancelCollectionJob",
    path: idParam("jobId"),
    response: dataOf(collectionJobSchema),
  },
  "POST /v1/metric/collection-jobs/{jobId}/retry": {
    roles: writers,
    idempotent: true,
    throttle: { ratePerSecond: 10, burst: 20 },
    handler: "retry-collection-job",
    access: { table: "readWrite", sendTo: ["dispatch"] },
    summary: "Retry the failed items of a finished job as a new job",
    description: "409 while the job runs, 400 if nothing failed.",
    tag: "jobs",
    operationId: "retryCollectionJob",
    path: idParam("jobId"),
    response: dataOf(collectionJobSchema),
    successStatus: 201,
  },
  "GET /v1/metric/collection-jobs/{jobId}/metric-values": {
    roles: anyRole,
    handler: "list-job-metric-values",
    summary: "A job's values, grouped per metric definition",
    tag: "jobs",
    operationId: "listJobMetricValues",
    path: idParam("jobId"),
    query: pageQuerySchema(1000, 500).extend({ status: valueStatusQuery }),
    response: pageOf(jobMetricValuesSchema),
  },
  "PUT /v1/metric/collection-jobs/{jobId}/metric-values/{callId}/{metricId}/review": {
    roles: writers,
    handler: "review-metric-value",
    access: { table: "readWrite" },
    summary: "Review a metric value: confirm or correct it",
    description:
      "`reviewedValue` must be a valid value of the definition version that produced it; the judge's `value` is kept. A new review replaces the previous one. Reviews feed GET /v1/metric/definitions/{idOrSlug}/agreement.",
    tag: "jobs",
    operationId: "reviewMetricValue",
    path: z.object({ jobId: z.string().min(1), callId: z.string().min(1), metricId: z.string().min(1) }),
    body: reviewSchema,
    response: dataOf(metricValueSchema),
  },

  // ---- policies
  "POST /v1/metric/policies": {
    audit: "metric_policy.created",
    roles: writers,
    idempotent: true,
    handler: "create-metric-policy",
    access: { table: "readWrite" },
    summary: "Create a metric policy",
    tag: "policies",
    operationId: "createMetricPolicy",
    body: createPolicySchema,
    response: dataOf(metricPolicySchema),
    successStatus: 201,
  },
  "GET /v1/metric/policies": {
    roles: anyRole,
    handler: "list-metric-policies",
    summary: "List metric policies",
    tag: "policies",
    operationId: "listMetricPolicies",
    query: pageQuerySchema(100, 20),
    response: pageOf(metricPolicySchema),
  },
  "GET /v1/metric/policies/{policyId}": {
    roles: anyRole,
    handler: "get-metric-policy",
    summary: "One metric policy",
    tag: "policies",
    operationId: "getMetricPolicy",
    path: idParam("policyId"),
    response: dataOf(metricPolicySchema),
  },
  "PUT /v1/metric/policies/{policyId}": {
    audit: "metric_policy.updated",
    roles: writers,
    handler: "update-metric-policy",
    access: { table: "readWrite" },
    summary: "Update a metric policy (partial body)",
    tag: "policies",
    operationId: "updateMetricPolicy",
    path: idParam("policyId"),
    body: updatePolicySchema,
    response: dataOf(metricPolicySchema),
  },
  "DELETE /v1/metric/policies/{policyId}": {
    audit: "metric_policy.deleted",
    roles: writers,
    handler: "delete-metric-policy",
    access: { table: "readWrite" },
    summary: "Delete a metric policy (soft)",
    tag: "policies",
    operationId: "deleteMetricPolicy",
    path: idParam("policyId"),
    response: dataOf(deletedSchema),
  },

  // ---- backfills
  "POST /v1/backfills": {
    audit: "backfill.created",
    roles: writers,
    idempotent: true,
    handler: "create-backfill",
    access: { table: "readWrite" },
    summary: "Create a scheduled backfill",
    tag: "backfills",
    operationId: "createBackfill",
    body: createBackfillSchema,
    response: dataOf(backfillSchema),
    successStatus: 201,
  },
  "GET /v1/backfills": {
    roles: anyRole,
    handler: "list-backfills",
    summary: "List backfills",
    tag: "backfills",
    operationId: "listBackfills",
    query: pageQuerySchema(100, 20),
    response: pageOf(backfillSchema),
  },
  "GET /v1/backfills/{backfillId}": {
    roles: anyRole,
    handler: "get-backfill",
    summary: "One backfill",
    tag: "backfills",
    operationId: "getBackfill",
    path: idParam("backfillId"),
    response: dataOf(backfillSchema),
  },
  "PUT /v1/backfills/{backfillId}": {
    audit: "backfill.updated",
    roles: writers,
    handler: "update-backfill",
    access: { table: "readWrite" },
    summary: "Update a backfill (partial body)",
    tag: "backfills",
    operationId: "updateBackfill",
    path: idParam("backfillId"),
    body: updateBackfillSchema,
    response: dataOf(backfillSchema),
  },
  "DELETE /v1/backfills/{backfillId}": {
    audit: "backfill.deleted",
    roles: writers,
    handler: "delete-backfill",
    access: { table: "readWrite" },
    summary: "Delete a backfill",
    tag: "backfills",
    operationId: "deleteBackfill",
    path: idParam("backfillId"),
    response: dataOf(deletedSchema),
  },
  "POST /v1/backfills/{backfillId}/run": {
    roles: writers,
    idempotent: true,
    handler: "run-backfill",
    access: { table: "readWrite", sendTo: ["dispatch"] },
    timeoutSeconds: 29,
    summary: "Run a backfill now",
    description: "201 with the run; 409 while the previous run's job is still running.",
    tag: "backfills",
    operationId: "runBackfill",
    path: idParam("backfillId"),
    response: dataOf(backfillRunSchema),
    successStatus: 201,
  },

  // ---- analytics
  "GET /v1/custom-metrics/names": {
    roles: anyRole,
    adminOnlyWhen: "analyticsAdminOnly",
    handler: "custom-metrics-names",
    summary: "Names (slugs) of metrics with analytics data",
    tag: "analytics",
    operationId: "customMetricNames",
    query: customMetricNamesQuerySchema,
    response: dataOf(z.array(z.string())),
  },
  "GET /v1/custom-metrics/aggregate": {
    roles: anyRole,
    adminOnlyWhen: "analyticsAdminOnly",
    handler: "custom-metrics-aggregate",
    summary: "One value per metric (and per group with groupBy) over a range",
    tag: "analytics",
    operationId: "customMetricsAggregate",
    query: rangeQuerySchema,
    response: dataOf(aggregateResultSchema),
  },
  "GET /v1/custom-metrics/daily": {
    roles: anyRole,
    adminOnlyWhen: "analyticsAdminOnly",
    handler: "custom-metrics-daily",
    summary: "One value per metric per local day",
    tag: "analytics",
    operationId: "customMetricsDaily",
    query: rangeQuerySchema,
    response: dataOf(dailyResultSchema),
  },
  "GET /v1/custom-metrics/timeseries": {
    roles: anyRole,
    adminOnlyWhen: "analyticsAdminOnly",
    handler: "custom-metrics-timeseries",
    summary: "A metric over time (Prometheus-style matrix)",
    tag: "analytics",
    operationId: "customMetricsTimeseries",
    query: timeseriesQuerySchema,
    response: dataOf(timeseriesResultSchema),
  },
  "GET /v1/custom-metrics/tags": {
    roles: anyRole,
    adminOnlyWhen: "analyticsAdminOnly",
    handler: "custom-metrics-tags",
    summary: "Label names and values seen for a metric",
    tag: "analytics",
    operationId: "customMetricTags",
    query: customMetricTagsQuerySchema,
    response: dataOf(tagsResultSchema),
  },
  "GET /v1/custom-metrics/sessions/{callId}": {
    roles: anyRole,
    adminOnlyWhen: "analyticsAdminOnly",
    handler: "custom-metrics-session",
    summary: "The latest value of each metric for one call",
    tag: "analytics",
    operationId: "customMetricsSession",
    path: idParam("callId"),
    response: dataOf(sessionResultSchema),
  },
  "POST /v1/custom-metrics/values": {
    roles: writers,
    handler: "record-custom-metric-values",
    access: { table: "readWrite" },
    summary: "Store values your agent recorded for stored calls (VoiceRun's custom metrics)",
    description:
      "Counters (numbers, summed) and flags (booleans) of calls, by callId or externalId, rolled up like computed values (names, aggregate, daily, timeseries, tags, sessions). Each value's id makes it idempotent: sent again for the same call, it is stored and counted once. Unknown calls, a metric definition's slug as name, or a name changing type: 400, nothing stored.",
    tag: "analytics",
    operationId: "recordCustomMetricValues",
    body: recordValuesBodySchema,
    response: dataOf(recordValuesResultSchema),
  },

  // ---- keys
  "GET /v1/me": {
    roles: anyRole,
    handler: "get-me",
    summary: "The organization and role of the API key in use",
    description: "For checking a key before using it: answers 401 for a key that is unknown or revoked.",
    tag: "keys",
    operationId: "getMe",
    response: dataOf(principalSchema),
  },

  // ---- API keys
  // ---- integrations (voice platforms posting their calls)
  "POST /v1/integrations": {
    audit: "integration.created",
    roles: admins,
    handler: "create-integration",
    access: { table: "readWrite" },
    idempotent: true,
    summary: "Connect a voice platform (Vapi, Retell, ElevenLabs)",
    description:
      "Point the platform's end-of-call webhook at `webhookUrl` (under this API's base URL), signed with `secret`. The secret is never returned.",
    tag: "integrations",
    operationId: "createIntegration",
    body: createIntegrationSchema,
    response: dataOf(integrationSchema),
    successStatus: 201,
  },
  "GET /v1/integrations": {
    roles: admins,
    handler: "list-integrations",
    summary: "List integrations, newest first",
    tag: "integrations",
    operationId: "listIntegrations",
    query: pageQuerySchema(100, 20),
    response: pageOf(integrationSchema),
  },
  "GET /v1/integrations/{integrationId}": {
    roles: admins,
    handler: "get-integration",
    summary: "One integration",
    tag: "integrations",
    operationId: "getIntegration",
    path: idParam("integrationId"),
    response: dataOf(integrationSchema),
  },
  "PUT /v1/integrations/{integrationId}": {
    audit: "integration.updated",
    roles: admins,
    handler: "update-integration",
    access: { table: "readWrite" },
    summary: "Change an integration, or rotate its secret",
    description:
      "A new `secret` replaces the old one, which still verifies deliveries for `secretGraceSeconds` (default an hour), so the platform can be switched over without losing a call.",
    tag: "integrations",
    operationId: "updateIntegration",
    path: idParam("integrationId"),
    body: updateIntegrationSchema,
    response: dataOf(integrationSchema),
  },
  "DELETE /v1/integrations/{integrationId}": {
    audit: "integration.deleted",
    roles: admins,
    handler: "delete-integration",
    access: { table: "readWrite" },
    summary: "Delete an integration",
    description: "Its webhook URL answers 404 from then on; the calls it brought stay.",
    tag: "integrations",
    operationId: "deleteIntegration",
    path: idParam("integrationId"),
    response: dataOf(deletedSchema),
  },

  "POST /v1/integrations/{provider}/{integrationId}/events": {
    roles: anyRole,
    public: true,
    handler: "receive-integration-event",
    access: { table: "readWrite", apiRateLimit: true },
    summary: "Where a voice platform posts its end-of-call webhooks (signed, no API key)",
    description:
      "Verified on the raw body with the integration's secret (401 for a missing, wrong or stale signature; nothing stored), mapped to a call and stored once per external id: a redelivery changes nothing, Retell's call_analyzed adds its analysis to the call call_ended stored. Events without a finished call answer 200 and are ignored. 404 for an unknown integration or another provider's path.",
    tag: "integrations",
    operationId: "receiveIntegrationEvent",
    path: z.object({ provider: z.string().min(1), integrationId: z.string().min(1) }),
    body: z.record(z.string(), z.unknown()).describe("The platform's own webhook payload, as it signed it"),
    response: dataOf(
      z.object({
        outcome: z.enum(["created", "duplicate", "updated", "ignored"]),
        callId: z.string().optional(),
        reason: z.string().optional(),
      }),
    ),
  },

  "POST /v1/api-keys": {
    audit: "api_key.created",
    roles: admins,
    handler: "create-api-key",
    access: { table: "readWrite" },
    idempotent: true,
    summary: "Create an API key",
    description: "The secret (`apiKey`) is in this answer only: store it now; only its hash is kept.",
    tag: "keys",
    operationId: "createApiKey",
    body: createApiKeySchema,
    response: dataOf(createdApiKeySchema),
    successStatus: 201,
  },
  "GET /v1/api-keys": {
    roles: admins,
    handler: "list-api-keys",
    summary: "The organization's API keys, newest first, revoked ones included (never their secrets)",
    tag: "keys",
    operationId: "listApiKeys",
    query: pageQuerySchema(100, 50),
    response: pageOf(apiKeySchema),
  },
  "DELETE /v1/api-keys/{keyId}": {
    audit: "api_key.revoked",
    roles: admins,
    handler: "revoke-api-key",
    access: { table: "readWrite" },
    summary: "Revoke an API key",
    description:
      "Requests with the key are refused (401) within two minutes (caches of the key's lookup); revoking again changes nothing. 409 for the key making the request.",
    tag: "keys",
    operationId: "revokeApiKey",
    path: idParam("keyId"),
    response: dataOf(apiKeySchema),
  },

  "GET /v1/audit-events": {
    roles: admins,
    handler: "list-audit-events",
    summary:
      "Who created, changed or deleted definitions, policies, backfills, API keys and the webhook secret, newest first",
    description:
      "Each event names the action, the resource's id, and the key (id and role) that made the change. Kept a year.",
    tag: "keys",
    operationId: "listAuditEvents",
    query: pageQuerySchema(100, 50),
    response: pageOf(auditEventSchema),
  },

  // ---- organization
  "GET /v1/organization": {
    roles: anyRole,
    handler: "get-organization",
    summary: "The organization of the API key in use, with its settings",
    tag: "keys",
    operationId: "getOrganization",
    response: dataOf(organizationSchema),
  },
  "PUT /v1/organization/settings": {
    roles: admins,
    handler: "update-organization-settings",
    access: { table: "readWrite" },
    audit: "organization.settings_updated",
    summary: "Change the organization's settings",
    description:
      "A partial body merged into the current settings; null clears one. Evaluators and API functions see a change within 30 s.",
    tag: "keys",
    operationId: "updateOrganizationSettings",
    body: organizationSettingsSchema,
    response: dataOf(organizationSchema),
  },

  // ---- webhooks
  "GET /v1/webhook-secret": {
    roles: admins,
    handler: "get-webhook-secret",
    access: { table: "readWrite" },
    summary: "The secret that signs this organization's webhooks (created on first read)",
    tag: "webhooks",
    operationId: "getWebhookSecret",
    response: dataOf(webhookSecretSchema),
  },
  "POST /v1/webhook-secret": {
    audit: "webhook_secret.rotated",
    roles: admins,
    handler: "rotate-webhook-secret",
    access: { table: "readWrite" },
    summary: "Rotate the webhook signing secret",
    tag: "webhooks",
    operationId: "rotateWebhookSecret",
    response: dataOf(webhookSecretSchema),
    successStatus: 201,
  },

  // ---- playground
  "POST /v1/metric/playground": {
    roles: writers,
    throttle: { ratePerSecond: 5, burst: 10 },
    handler: "run-playground",
    // Writes only the shared LLM limiter's items: its model calls count against the account's limits.
    access: { table: "readWrite", secrets: ["anthropic"] },
    summary: "Evaluate one metric on one call now; nothing is stored",
    description:
      "`metric` is `{id}` (id or slug of a saved definition) or an inline definition (the body of POST /v1/metric/definitions). 503 + Retry-After when the LLM is rate-limited, or when running jobs hold the account's rate limits (the playground's calls go through the same limiter as the evaluators').",
    tag: "playground",
    operationId: "runPlayground",
    body: playgroundBodySchema,
    response: dataOf(playgroundResultSchema),
  },
  "POST /v1/metric/playground/judge-modes": {
    roles: writers,
    throttle: { ratePerSecond: 2, burst: 4 },
    handler: "compare-judge-modes",
    // Writes only the shared LLM limiter's items: its model calls count against the account's limits.
    access: { table: "readWrite", secrets: ["anthropic"] },
    summary: "Judge one call with several metrics in both judge modes, side by side; nothing is stored",
    description:
      "Each of `metrics` is `{id}` (id or slug) or an inline definition. Every metric is judged alone (`isolated`) and as a grouped job would judge it (`grouped`); `sameAnswer` says whether the two agree on status and value. 503 + Retry-After when the LLM is rate-limited, or when running jobs hold the account's rate limits (the playground's calls go through the same limiter as the evaluators').",
    tag: "playground",
    operationId: "compareJudgeModes",
    body: judgeModesBodySchema,
    response: dataOf(judgeModeComparisonSchema),
  },
} satisfies Record<string, RouteContract>;

export type RouteKey = keyof typeof contract;

/** The contract of a route key, if it has one (the tests demand one for every route). */
export function contractFor(routeKey: string): RouteContract | undefined {
  return (contract as Record<string, RouteContract>)[routeKey];
}
