import { z } from "zod";
import { parseSchedule } from "../backfills/schedule.ts";
import { judgeModeSchema, llmModeSchema, MAX_METRICS_PER_JOB } from "./job.ts";

/** ISO-8601 durations in days, hours and minutes: P1D, PT6H, P7DT12H. */
export function parseLookback(lookback: string): number | undefined {
  const match = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?$/.exec(lookback);
  if (!match || lookback === "P" || lookback.endsWith("T")) return undefined;
  const [, days = "0", hours = "0", minutes = "0"] = match;
  return ((Number(days) * 24 + Number(hours)) * 60 + Number(minutes)) * 60_000;
}

const scheduleSchema = z
  .string()
  .min(1)
  .max(256)
  .superRefine((expression, ctx) => {
    try {
      parseSchedule(expression);
    } catch (error) {
      ctx.addIssue({ code: "custom", message: (error as Error).message });
    }
  });

const callFilterSchema = z
  .strictObject({
    agentId: z.string().min(1).max(256).optional(),
    properties: z.record(z.string().min(1).max(128), z.string().max(1024)).optional(),
    startedAfter: z.iso.datetime({ offset: true }).optional(),
    lookback: z
      .string()
      .refine((value) => parseLookback(value) !== undefined, 'use an ISO-8601 duration such as "P1D" or "PT6H"')
      .optional(),
  })
  .refine((filter) => !(filter.startedAfter && filter.lookback), {
    message: "give startedAfter or lookback, not both",
    path: ["lookback"],
  });

const backfillFields = {
  name: z.string().trim().min(1).max(200),
  schedule: scheduleSchema,
  metrics: z
    .array(z.strictObject({ id: z.string().trim().min(1).max(256) }))
    .min(1)
    .max(MAX_METRICS_PER_JOB),
  callFilter: callFilterSchema,
  /** Skip call × metric pairs that already have a value for the metric's current version. */
  onlyMissing: z.boolean(),
  status: z.enum(["ACTIVE", "INACTIVE"]),
  webhookUrl: z.url().max(2048).optional(),
  /** The judge mode of the jobs the backfill starts. */
  judgeMode: judgeModeSchema.optional(),
  /** How the jobs the backfill starts reach the model; `batch` (half price, within a day) by default. */
  llmMode: llmModeSchema.optional(),
};

export const createBackfillSchema = z.strictObject({
  ...backfillFields,
  callFilter: backfillFields.callFilter.default({}),
  onlyMissing: backfillFields.onlyMissing.default(true),
  status: backfillFields.status.default("ACTIVE"),
  llmMode: backfillFields.llmMode.default("batch"),
});
export type CreateBackfillInput = z.infer<typeof createBackfillSchema>;

export const updateBackfillSchema = z
  .strictObject(backfillFields)
  .partial()
  .refine((patch) => Object.keys(patch).length > 0, "send at least one field to change");

export interface BackfillRun {
  at: string;
  trigger: "schedule" | "manual";
  status: "started" | "nothing-to-do" | "skipped";
  jobId?: string;
  items: number;
  cutoff: string;
  errorMessage?: string;
}

export interface Backfill extends CreateBackfillInput {
  id: string;
  nextRunAt?: string;
  lastJobId?: string;
  lastRun?: BackfillRun;
  createdAt: string;
  updatedAt: string;
}
