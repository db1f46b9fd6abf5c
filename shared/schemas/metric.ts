import { z } from "zod";
import { builtInConfigSchema } from "../metrics/builtin.ts";
import { valueSchemaOf } from "./metric-values.ts";

export const outputTypes = ["BOOLEAN", "NUMERIC", "SCALE", "CLASSIFICATION", "TEXT", "COUNT", "OFFSET"] as const;
export type OutputType = (typeof outputTypes)[number];
const calculationTypes = ["LLM_JUDGE", "BUILT_IN"] as const;
export type CalculationType = (typeof calculationTypes)[number];

const slugSchema = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9_-]{0,62}$/,
    "use 1-63 lowercase letters, digits, '-' or '_', starting with a letter or digit",
  );

const metricFields = {
  slug: slugSchema,
  name: z.string().trim().min(1).max(200),
  description: z.string().max(2000),
  calculationType: z.enum(calculationTypes),
  outputType: z.enum(outputTypes),
  llmPrompt: z.string().trim().min(1).max(20_000).optional(),
  scaleMin: z.number().int().optional(),
  scaleMax: z.number().int().optional(),
  /** Meaning of scale points for the judge, e.g. {"1": "dismissive", "5": "warm and attentive"}. */
  scaleLabels: z
    .record(z.string().regex(/^-?\d+$/, "keys are scale points"), z.string().min(1).max(200))
    .refine((labels) => Object.keys(labels).length <= 101, "label at most 101 scale points")
    .optional(),
  classificationOptions: z.array(z.string().trim().min(1).max(200)).min(2).max(50).optional(),
  maxClassifications: z.number().int().min(1).max(50).optional(),
  booleanTrueLabel: z.string().max(100).optional(),
  booleanFalseLabel: z.string().max(100).optional(),
  unit: z.strictObject({ name: z.string().min(1).max(50), symbol: z.string().max(10) }).optional(),
  supportedContexts: z.array(z.enum(["CALL", "SEGMENT"])).min(1),
  model: z.string().min(1).max(100).optional(),
  /** How much the model deliberates on this metric (thinking is billed as output); JUDGE_EFFORT otherwise. */
  effort: z.enum(["low", "medium", "high"]).optional(),
  /**
   * What the judge sees besides the transcript: `toolInvocations` (the agent's tool calls)
   * and `properties.<key>` (a call property), in a cached block after the transcript.
   */
  include: z
    .array(
      z.string().regex(/^(toolInvocations|properties\.[^\s]{1,128})$/, 'use "toolInvocations" or "properties.<key>"'),
    )
    .max(20)
    .refine((names) => new Set(names).size === names.length, "names must not repeat")
    .optional(),
  /**
   * Few-shot examples for the judge: a short transcript excerpt, the answer it calls for
   * (null: the question does not apply) and why. Each answer must be a valid value of the metric.
   */
  examples: z
    .array(
      z.strictObject({
        excerpt: z.string().trim().min(1).max(2000),
        value: z.union([z.boolean(), z.number(), z.string().max(1000), z.array(z.string().max(200)).max(50), z.null()]),
        reasoning: z.string().trim().min(1).max(500).optional(),
      }),
    )
    .min(1)
    .max(5)
    .optional(),
  /** Never judged together with other questions (a job's `grouped` mode), so that they cannot sway its answer. */
  isolated: z.boolean().optional(),
  /** Latency-like: analytics report the p95 of its values instead of their average. */
  histogram: z.boolean().optional(),
  builtIn: builtInConfigSchema.optional(),
};

type Definition = Omit<z.infer<typeof metricShape>, "slug"> & { slug?: string };
type Issue = (path: string, message: string) => void;

/** Cross-field rules, shared by create and by update (applied to the merged definition). */
function checkDefinition(definition: Definition, ctx: z.RefinementCtx): void {
  const issue: Issue = (path, message) => ctx.addIssue({ code: "custom", path: [path], message });
  checkCalculation(definition, issue);
  checkScale(definition, issue);
  checkClassification(definition, issue);
  checkExamples(definition, ctx);
}

function checkExamples(definition: Definition, ctx: z.RefinementCtx): void {
  if (!definition.examples) return;
  if (definition.calculationType !== "LLM_JUDGE") {
    ctx.addIssue({ code: "custom", path: ["examples"], message: "only allowed when calculationType is LLM_JUDGE" });
    return;
  }
  const valid = valueSchemaOf(definition);
  for (const [index, example] of definition.examples.entries()) {
    if (example.value === null) continue;
    const parsed = valid.safeParse(example.value);
    if (parsed.success) continue;
    const message = parsed.error.issues.map((i) => i.message).join("; ");
    ctx.addIssue({
      code: "custom",
      path: ["examples", index, "value"],
      message: `not a valid value of this metric: ${message}`,
    });
  }
}

function checkCalculation(definition: Definition, issue: Issue): void {
  if (definition.calculationType === "BUILT_IN") {
    if (!definition.builtIn) issue("builtIn", "required when calculationType is BUILT_IN");
    if (!["NUMERIC", "COUNT"].includes(definition.outputType)) {
      issue("outputType", "BUILT_IN metrics produce numbers: use NUMERIC or COUNT");
    }
  } else {
    if (definition.builtIn) issue("builtIn", "only allowed when calculationType is BUILT_IN");
    if (!definition.llmPrompt) issue("llmPrompt", "required when calculationType is LLM_JUDGE");
  }
}

function checkScale(definition: Definition, issue: Issue): void {
  if (definition.outputType !== "SCALE") {
    if (definition.scaleLabels) issue("scaleLabels", "only allowed for SCALE");
    return;
  }
  const { scaleMin, scaleMax } = definition;
  if (scaleMin === undefined || scaleMax === undefined) {
    issue("scaleMin", "scaleMin and scaleMax are required for SCALE");
  } else if (scaleMin >= scaleMax) {
    issue("scaleMax", "must be greater than scaleMin");
  } else {
    const outside = Object.keys(definition.scaleLabels ?? {}).filter(
      (k) => Number(k) < scaleMin || Number(k) > scaleMax,
    );
    if (outside.length > 0) issue("scaleLabels", `points outside ${scaleMin}..${scaleMax}: ${outside.join(", ")}`);
  }
}

function checkClassification(definition: Definition, issue: Issue): void {
  if (definition.outputType !== "CLASSIFICATION") return;
  const options = definition.classificationOptions;
  if (!options) issue("classificationOptions", "required for CLASSIFICATION");
  else if (new Set(options).size !== options.length) issue("classificationOptions", "options must be unique");
  if (options && definition.maxClassifications && definition.maxClassifications > options.length) {
    issue("maxClassifications", "cannot exceed the number of options");
  }
}

const metricShape = z.strictObject({
  ...metricFields,
  description: metricFields.description.default(""),
  supportedContexts: metricFields.supportedContexts.default(["CALL"]),
});
export const createMetricSchema = metricShape.superRefine(checkDefinition);
export type CreateMetricInput = z.infer<typeof createMetricSchema>;

/** POST's body: `slug` may be left out; one is then derived from the name (shared/store/metrics.ts). */
export const createMetricBodySchema = metricShape
  .extend({
    slug: slugSchema.optional().describe("Derived from the name when left out (unique in the organization)"),
  })
  .superRefine(checkDefinition);
export type CreateMetricBody = z.infer<typeof createMetricBodySchema>;

/** PUT takes any subset of fields; the merged result must still be a valid definition. */
export const updateMetricSchema = z
  .strictObject(metricFields)
  .partial()
  .refine((patch) => Object.keys(patch).length > 0, "send at least one field to change");

export interface MetricDefinition extends CreateMetricInput {
  id: string;
  version: number;
  /** When it was archived: new jobs, policies and backfills refuse it; running ones keep it. */
  archivedAt?: string;
  createdAt: string;
  updatedAt: string;
}
