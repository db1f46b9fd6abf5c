/**
 * What a valid value of a metric is, by its output type and range: the judge's answers and a
 * definition's few-shot examples are both checked against it.
 */
import { z } from "zod";
import type { OutputType } from "./metric.ts";

export type JudgedValue = number | string | boolean | string[];

/** The definition fields a value's validity depends on. */
export interface ValueRules {
  outputType: OutputType;
  scaleMin?: number;
  scaleMax?: number;
  classificationOptions?: string[];
  maxClassifications?: number;
}

/** DynamoDB numbers: 0, or a magnitude from 1e-130 to just under 1e126. */
export function isStorableNumber(value: number): boolean {
  if (!Number.isFinite(value)) return false;
  const magnitude = Math.abs(value);
  return magnitude === 0 || (magnitude >= 1e-130 && magnitude < 1e126);
}

function valueSchema(definition: ValueRules): z.ZodType<JudgedValue> {
  switch (definition.outputType) {
    case "BOOLEAN":
      return z.boolean();
    case "NUMERIC":
      return z
        .number()
        .refine(isStorableNumber, "must be 0 or a finite number with a magnitude between 1e-130 and 1e125");
    case "SCALE":
      return z
        .number()
        .int()
        .min(definition.scaleMin ?? Number.MIN_SAFE_INTEGER)
        .max(definition.scaleMax ?? Number.MAX_SAFE_INTEGER);
    case "CLASSIFICATION": {
      const options = definition.classificationOptions ?? [];
      const label = z
        .string()
        .refine((v) => options.includes(v), { message: `each label must be one of: ${options.join(" | ")}` });
      // A lone label is accepted as a list of one.
      return z.preprocess(
        (v) => (typeof v === "string" ? [v] : v),
        z
          .array(label)
          .min(1)
          .max(definition.maxClassifications ?? 1)
          .refine((labels) => new Set(labels).size === labels.length, "labels must not repeat"),
      );
    }
    case "TEXT":
      return z.string().trim().min(1).max(1000);
    case "COUNT":
      return z.number().int().nonnegative();
    case "OFFSET":
      return z.string().regex(/^s\d+$/, "must be a segment id like s4");
  }
}

/** Value schemas by the definition fields they depend on: built once per container, not per judgment. */
const valueSchemas = new Map<string, z.ZodType<JudgedValue>>();
const MAX_CACHED_SCHEMAS = 1_000;

export function valueSchemaOf(definition: ValueRules): z.ZodType<JudgedValue> {
  const { outputType, scaleMin, scaleMax, classificationOptions, maxClassifications } = definition;
  const key = JSON.stringify([outputType, scaleMin, scaleMax, classificationOptions, maxClassifications]);
  let schema = valueSchemas.get(key);
  if (!schema) {
    if (valueSchemas.size >= MAX_CACHED_SCHEMAS) valueSchemas.clear();
    schema = valueSchema(definition);
    valueSchemas.set(key, schema);
  }
  return schema;
}
