/** Query parameters of the analytics (custom-metrics) routes. */
import { z } from "zod";

export const rangeQuerySchema = z.object({
  startDate: z.string().min(1),
  endDate: z.string().min(1),
  metricNames: z.string().optional(),
  agentId: z.string().min(1).optional(),
  environmentId: z.string().min(1).optional(),
  tags: z.string().optional(),
  timezone: z.string().min(1).default("UTC"),
  groupBy: z.string().optional(),
  stats: z
    .enum(["true", "false"])
    .optional()
    .describe(
      "`true`: each metric as {value, aggregation, count, sum, average, p95, passRate} (the statistics that apply) instead of one number",
    ),
});

export const timeseriesQuerySchema = z.object({
  metricName: z.string().min(1),
  startDate: z.string().min(1),
  endDate: z.string().min(1),
  step: z.string().default("1h"),
  agentId: z.string().min(1).optional(),
  environmentId: z.string().min(1).optional(),
  tags: z.string().optional(),
  timezone: z.string().min(1).default("UTC"),
});

export const customMetricNamesQuerySchema = z.object({ agentId: z.string().min(1).optional() });
export const customMetricTagsQuerySchema = z.object({
  /** Without it, the labels of every metric (as VoiceRun's tags). */
  metricName: z.string().min(1).optional(),
  agentId: z.string().min(1).optional(),
});
