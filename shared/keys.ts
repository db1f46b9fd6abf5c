/**
 * Single-table key design. Every key of tenant data starts with the organization, so a
 * query can never reach another organization's items.
 *
 * | entity            | pk                               | sk                      | gsi1pk                 | gsi1sk                  |
 * |-------------------|----------------------------------|-------------------------|------------------------|-------------------------|
 * | ApiKey            | APIKEY#<sha256>                  | APIKEY                  | ORG#<org>#APIKEYS      | <createdAt>#<keyId>     |
 * | Organization      | ORG#<org>                        | ORG                     |                        |                         |
 * | Call              | ORG#<org>#CALL#<call>            | CALL                    | ORG#<org>#CALLS        | <createdAt>#<call>      |
 * | TranscriptChunk   | ORG#<org>#CALL#<call>            | TRANSCRIPT#<nnnn>       |                        |                         |
 * | CallExternalId    | ORG#<org>#CALLEXT#<externalId>   | CALLEXT                 |                        |                         |
 * | Metric (latest)   | ORG#<org>#METRIC#<metric>        | METRIC                  | ORG#<org>#METRICS      | <createdAt>#<metric>    |
 * | MetricVersion     | ORG#<org>#METRIC#<metric>        | V#<nnnnnn>              |                        |                         |
 * | MetricSlug        | ORG#<org>#METRICSLUG#<slug>      | SLUG                    |                        |                         |
 * | Job               | ORG#<org>#JOB#<job>              | JOB                     | ORG#<org>#JOBS         | <createdAt>#<job>       |
 * | JobPage           | ORG#<org>#JOB#<job>              | PAGE#<nnnn>             |                        |                         |
 * | RunningJob        | ORG#<org>#JOB#<job>              | RUNNING                 | RUNNINGJOBS (until final) | <createdAt>#<org>#<job> |
 * | LlmSubmission     | ORG#<org>#JOB#<job>              | SUBMISSION#<id>         | LLMSUBMISSIONS#OPEN (until collected) | <createdAt>#<org>#<job>#<id> |
 * | ProviderBatch     | LLMBATCH#<provider batch id>     | LLMBATCH                |                        |                         |
 * | LlmRateLimit      | LLMRATELIMIT#<model>             | LLMRATELIMIT            |                        |                         |
 * | LlmRateLimitTenant | LLMRATELIMIT#<model>            | TENANT#<work group>     |                        |                         |
 * | ItemResult        | ORG#<org>#JOB#<job>              | ITEM#<call>#<metric>    | ORG#<org>#CALL#<call>#VALUES | <computedAt>#<job>#<metric> |
 * | BilledAttempt     | ORG#<org>#JOB#<job>              | BILLED#<attempt>        |                        |                         |
 * | WebhookSecret     | ORG#<org>                        | WEBHOOKSECRET           |                        |                         |
 * | AuditEvent        | ORG#<org>#AUDIT                  | <at>#<id>               |                        |                         |
 * | ApiRateLimit      | ORG#<org>#APIRATE                | APIRATE                 |                        |                         |
 * | SpendShard        | ORG#<org>#SPEND#<yyyy-mm>        | SHARD#<nn>              |                        |                         |
 * | IdempotencyRecord | ORG#<org>#IDEMPOTENCY#<sha256>   | IDEMPOTENCY             |                        |                         |
 * | Policy            | ORG#<org>#POLICY#<policy>        | POLICY                  | ORG#<org>#POLICIES     | <createdAt>#<policy>    |
 * | PolicyBatch       | ORG#<org>#POLICY#<policy>        | BATCH#<windowStart>[#<nnn>] | POLICYBATCHES#OPEN (until flushed) | <dueAt>#<org>#<policy> |
 * | PolicyCallMatch   | ORG#<org>#POLICY#<policy>        | MATCH#<call>            |                        |                         |
 * | Integration       | INTEGRATION#<integration>        | INTEGRATION             | ORG#<org>#INTEGRATIONS | <createdAt>#<integration> |
 * | Backfill          | ORG#<org>#BACKFILL#<backfill>    | BACKFILL                | ORG#<org>#BACKFILLS    | <createdAt>#<backfill>  |
 * | BackfillDue       | ORG#<org>#BACKFILL#<backfill>    | DUE                     | BACKFILLS#DUE          | <nextRunAt>#<org>#<backfill> |
 * | AnalyticsMetric   | ORG#<org>#ANALYTICS#METRICS      | <slug>                  |                        |                         |
 * | AnalyticsLabelSet | ORG#<org>#ANALYTICS#LABELSETS#<slug> | <labelSet>          |                        |                         |
 * | Rollup            | ORG#<org>#ROLLUP#<slug>#<labelSet>#<tier> | <item start, ISO> (tiers 5m — an hour of slots per item —, 1h, 1d, 10d) |      |
 * | RollupDelta       | ORG#<org>#ROLLUPDELTA#<id>       | DELTA                   | ROLLUPDELTAS#<0..7> (until applied) | <createdAt>#<org>#<id> |
 * | MergedRollupDelta | ORG#<org>#ROLLUPDELTA#<id>       | DELTA                   | ROLLUPDELTAS#<0..7> (until applied) | <mergedAt>#<org>#<id> |
 *
 * Analytics keys are built in shared/analytics/ (index-store.ts, rollup.ts); <labelSet> is
 * a hash of the sorted labels.
 *
 * The index projects keys plus `status`, `captureStatus` and `metricVersion` (shared/table.ts):
 * queries filter on those, and read whole items from the table (`baseItems` in store/query.ts).
 *
 * POLICYBATCHES#OPEN, BACKFILLS#DUE, ROLLUPDELTAS#<n>, RUNNINGJOBS and LLMSUBMISSIONS#OPEN
 * are the only index partitions shared by all organizations: they hold small, short-lived
 * entries that the scheduled flusher, backfill runner, rollup sweeper, job reconciler and
 * batch collector read by time (a Query, never a scan).
 */
/** Ends the partition key of every organization's API rate item: the grant to API functions names it. */
export const API_RATE_LIMIT_SUFFIX = "#APIRATE";

const pad = (n: number, width: number): string => String(n).padStart(width, "0");

export const keys = {
  apiKey: (hash: string) => ({ pk: `APIKEY#${hash}`, sk: "APIKEY" }),
  apiKeyList: (orgId: string) => `ORG#${orgId}#APIKEYS`,
  /** Found by its id alone (a platform's webhook names no organization); the item names its organization. */
  integration: (integrationId: string) => ({ pk: `INTEGRATION#${integrationId}`, sk: "INTEGRATION" }),
  integrationList: (orgId: string) => `ORG#${orgId}#INTEGRATIONS`,
  organization: (orgId: string) => ({ pk: `ORG#${orgId}`, sk: "ORG" }),
  webhookSecret: (orgId: string) => ({ pk: `ORG#${orgId}`, sk: "WEBHOOKSECRET" }),
  /** The organization's API token bucket: when it would be full again (GCRA's theoretical arrival time). */
  apiRateLimit: (orgId: string) => ({ pk: `ORG#${orgId}${API_RATE_LIMIT_SUFFIX}`, sk: "APIRATE" }),
  /** One of a month's shards of the organization's LLM spend. */
  spendShard: (orgId: string, month: string, shard: number) => ({
    pk: `ORG#${orgId}#SPEND#${month}`,
    sk: `SHARD#${pad(shard, 2)}`,
  }),
  auditTrail: (orgId: string) => `ORG#${orgId}#AUDIT`,
  auditEvent: (orgId: string, at: string, id: string) => ({ pk: `ORG#${orgId}#AUDIT`, sk: `${at}#${id}` }),
  /** A request's Idempotency-Key (hashed), its request's fingerprint and response; expires after 24 h. */
  idempotencyRecord: (orgId: string, keyHash: string) => ({
    pk: `ORG#${orgId}#IDEMPOTENCY#${keyHash}`,
    sk: "IDEMPOTENCY",
  }),

  call: (orgId: string, callId: string) => ({ pk: `ORG#${orgId}#CALL#${callId}`, sk: "CALL" }),
  callPartition: (orgId: string, callId: string) => `ORG#${orgId}#CALL#${callId}`,
  transcriptChunkSk: (index: number) => `TRANSCRIPT#${pad(index, 4)}`,
  callExternalId: (orgId: string, externalId: string) => ({
    pk: `ORG#${orgId}#CALLEXT#${externalId}`,
    sk: "CALLEXT",
  }),
  callList: (orgId: string) => `ORG#${orgId}#CALLS`,

  metric: (orgId: string, metricId: string) => ({ pk: `ORG#${orgId}#METRIC#${metricId}`, sk: "METRIC" }),
  metricVersion: (orgId: string, metricId: string, version: number) => ({
    pk: `ORG#${orgId}#METRIC#${metricId}`,
    sk: `V#${pad(version, 6)}`,
  }),
  metricSlug: (orgId: string, slug: string) => ({ pk: `ORG#${orgId}#METRICSLUG#${slug}`, sk: "SLUG" }),
  metricList: (orgId: string) => `ORG#${orgId}#METRICS`,
  /** Archived definitions leave the list for this one (their items stay; jobs keep running them). */
  archivedMetricList: (orgId: string) => `ORG#${orgId}#METRICS#ARCHIVED`,

  job: (orgId: string, jobId: string) => ({ pk: `ORG#${orgId}#JOB#${jobId}`, sk: "JOB" }),
  jobPage: (orgId: string, jobId: string, page: number) => ({
    pk: `ORG#${orgId}#JOB#${jobId}`,
    sk: `PAGE#${pad(page, 4)}`,
  }),
  jobList: (orgId: string) => `ORG#${orgId}#JOBS`,
  /** Marks a job not yet final, for the reconciler; deleted once the job ends. */
  runningJob: (orgId: string, jobId: string) => ({ pk: `ORG#${orgId}#JOB#${jobId}`, sk: "RUNNING" }),
  /** Sparse index partition of running jobs (sort key: creation time). */
  runningJobs: "RUNNINGJOBS",
  /** Marks a job created with an expiry, for the reconciler; deleted with its running marker. */
  jobDeadline: (orgId: string, jobId: string) => ({ pk: `ORG#${orgId}#JOB#${jobId}`, sk: "DEADLINE" }),
  /** Sparse index partition of jobs with an expiry (sort key: the expiry). */
  jobDeadlines: "JOBDEADLINES",

  policy: (orgId: string, policyId: string) => ({ pk: `ORG#${orgId}#POLICY#${policyId}`, sk: "POLICY" }),
  policyList: (orgId: string) => `ORG#${orgId}#POLICIES`,
  /** Calls matched by a policy within one window, flushed into one job (shards > 0 when one item is full). */
  policyBatch: (orgId: string, policyId: string, windowStart: string, shard = 0) => ({
    pk: `ORG#${orgId}#POLICY#${policyId}`,
    sk: shard === 0 ? `BATCH#${windowStart}` : `BATCH#${windowStart}#${pad(shard, 3)}`,
  }),
  /** The one batch a call matched by a policy belongs to (expires once no stream replay can come). */
  policyCallMatch: (orgId: string, policyId: string, callId: string) => ({
    pk: `ORG#${orgId}#POLICY#${policyId}`,
    sk: `MATCH#${callId}`,
  }),
  backfill: (orgId: string, backfillId: string) => ({ pk: `ORG#${orgId}#BACKFILL#${backfillId}`, sk: "BACKFILL" }),
  backfillList: (orgId: string) => `ORG#${orgId}#BACKFILLS`,
  /** A backfill's next scheduled run, in the global due index (sort key: due time). */
  backfillDue: (orgId: string, backfillId: string) => ({ pk: `ORG#${orgId}#BACKFILL#${backfillId}`, sk: "DUE" }),
  dueBackfills: "BACKFILLS#DUE",
  /** Sparse index partition of batches not yet flushed (sort key: due time). */
  openPolicyBatches: "POLICYBATCHES#OPEN",

  /** A batch-mode job's items handed to the Message Batches API together. */
  llmSubmission: (orgId: string, jobId: string, submissionId: string) => ({
    pk: `ORG#${orgId}#JOB#${jobId}`,
    sk: `SUBMISSION#${submissionId}`,
  }),
  llmSubmissionPrefix: "SUBMISSION#",
  /** Which submission a provider batch belongs to: one at most, so a batch is never adopted twice. */
  providerBatch: (batchId: string) => ({ pk: `LLMBATCH#${batchId}`, sk: "LLMBATCH" }),
  /** The shared LLM limiter's state of one model: the Anthropic key, and so its limits, are the stack's, not an org's. */
  llmRateLimit: (model: string) => ({ pk: `LLMRATELIMIT#${model}`, sk: "LLMRATELIMIT" }),
  /** Until when a tenant (a work queue group: an org, or its bulk work) holds reservations: the limiter's fair share. */
  llmRateLimitTenant: (model: string, tenant: string) => ({ pk: `LLMRATELIMIT#${model}`, sk: `TENANT#${tenant}` }),
  /** Sparse index partition of submissions whose results are not all recorded (sort key: creation time). */
  openLlmSubmissions: "LLMSUBMISSIONS#OPEN",

  /** Marks a model answer no value records as added to its job's usage (expires after a week). */
  billedAttempt: (orgId: string, jobId: string, attemptId: string) => ({
    pk: `ORG#${orgId}#JOB#${jobId}`,
    sk: `BILLED#${attemptId}`,
  }),

  itemResult: (orgId: string, jobId: string, callId: string, metricId: string) => ({
    pk: `ORG#${orgId}#JOB#${jobId}`,
    sk: `ITEM#${callId}#${metricId}`,
  }),
  itemResultPrefix: "ITEM#",
  /** The ids a value's keys hold: the value item does not repeat them (it stays under 1 KB). */
  parseItemResult: (pk: string, sk: string) => ({
    jobId: pk.slice(pk.lastIndexOf("#JOB#") + "#JOB#".length),
    callId: sk.split("#")[1] ?? "",
    metricDefinitionId: sk.split("#")[2] ?? "",
  }),
  callValues: (orgId: string, callId: string) => `ORG#${orgId}#CALL#${callId}#VALUES`,
  /** Values the agent recorded for a call (POST /v1/custom-metrics/values), sort key `VALUE#<client id>`. */
  recordedValues: (orgId: string, callId: string) => `ORG#${orgId}#CALL#${callId}#RECORDED`,
  /** A reviewed value's copy under its definition, for the agreement report. */
  metricReview: (orgId: string, metricId: string, callId: string, jobId: string) => ({
    pk: `ORG#${orgId}#METRIC#${metricId}#REVIEWS`,
    sk: `${callId}#${jobId}`,
  }),
  metricReviews: (orgId: string, metricId: string) => `ORG#${orgId}#METRIC#${metricId}#REVIEWS`,

  /** Sortable list key: newest-first listings read the index backwards. */
  listSortKey: (createdAt: string, id: string) => `${createdAt}#${id}`,
} as const;
