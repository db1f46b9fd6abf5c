import { z } from "zod";

/**
 * What an organization's admins set for it (PUT /v1/organization/settings): a partial body,
 * merged into the current settings; `null` clears a setting.
 */
export const organizationSettingsSchema = z.strictObject({
  allowedModels: z
    .array(z.string().trim().min(1).max(100))
    .min(1)
    .max(50)
    .nullable()
    .optional()
    .describe(
      "The only models LLM-judged definitions, jobs and playground runs may use (a definition without a model uses the service's default judge model, which must then be listed); absent or null: any model",
    ),
  monthlyBudgetUsd: z
    .number()
    .positive()
    .max(100_000_000)
    .nullable()
    .optional()
    .describe(
      "What the organization's LLM calls may cost per calendar month (UTC), in USD: an API job expected to exceed what is left is refused with 402 before anything runs, every job stops its model calls when it has spent what was left at its creation, and playground runs are refused once nothing is left",
    ),
  maxJobCostUsd: z
    .number()
    .positive()
    .max(1_000_000)
    .nullable()
    .optional()
    .describe(
      "Every job's cost cap (USD, estimated from the tokens its answers used): a job that reaches it makes no more model calls and its remaining LLM items end as ERROR, saying why; a job's own maxCostUsd may only lower it",
    ),
  retentionDays: z
    .number()
    .int()
    .min(1)
    .max(3650)
    .nullable()
    .optional()
    .describe(
      "Calls (with their transcripts) and metric values stored from now on are deleted this many days after they are written (DynamoDB TTL, within a day or two of that); analytics rollups are kept. Absent or null: kept until deleted",
    ),
  analyticsAdminOnly: z
    .boolean()
    .nullable()
    .optional()
    .describe(
      "true: the analytics routes (/v1/custom-metrics/*) serve admin keys only, as VoiceRun keeps analytics to owners and admins; absent, null or false: every key may read them",
    ),
  apiRateLimit: z
    .strictObject({
      requestsPerSecond: z.number().gt(0).max(10_000),
      burst: z.number().int().min(1).max(100_000),
    })
    .nullable()
    .optional()
    .describe(
      "The organization's API rate: requestsPerSecond sustained, burst at once (a token bucket over all its keys), answered 429 with Retry-After beyond it; absent or null: the service's defaults (API_REQUESTS_PER_SECOND, API_BURST)",
    ),
});
export type OrganizationSettings = z.infer<typeof organizationSettingsSchema>;
