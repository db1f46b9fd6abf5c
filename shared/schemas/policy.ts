import { z } from "zod";
import { judgeModeSchema, llmModeSchema, MAX_METRICS_PER_JOB } from "./job.ts";

const conditionOperators = [
  "EQUALS",
  "NOT_EQUALS",
  "CONTAINS",
  "STARTS_WITH",
  "GREATER_THAN",
  "LESS_THAN",
  "GREATER_THAN_OR_EQUALS",
  "LESS_THAN_OR_EQUALS",
] as const;

export const conditionSchema = z
  .strictObject({
    conditionType: z.enum(["AGENT", "CALL_PROPERTY"]),
    /** The property name for CALL_PROPERTY; unused for AGENT (which compares agentId). */
    conditionKey: z.string().min(1).max(128).optional(),
    conditionOperator: z.enum(conditionOperators),
    conditionValue: z.string().max(1024),
  })
  .superRefine((condition, ctx) => {
    if (condition.conditionType === "CALL_PROPERTY" && !condition.conditionKey) {
      ctx.addIssue({ code: "custom", path: ["conditionKey"], message: "required for CALL_PROPERTY" });
    }
    if (condition.conditionOperator.includes("THAN") && !Number.isFinite(Number(condition.conditionValue))) {
      ctx.addIssue({ code: "custom", path: ["conditionValue"], message: "must be a number for this operator" });
    }
  });
export type PolicyCondition = z.infer<typeof conditionSchema>;

const policyFields = {
  name: z.string().trim().min(1).max(200),
  status: z.enum(["ACTIVE", "INACTIVE"]),
  metrics: z
    .array(z.strictObject({ id: z.string().trim().min(1).max(256) }))
    .min(1)
    .max(MAX_METRICS_PER_JOB),
  /** OR of groups, each an AND of conditions; empty = every call. */
  conditions: z.array(z.array(conditionSchema).min(1).max(20)).max(20),
  webhookUrl: z.url().max(2048).optional(),
  /** The judge mode of the jobs the policy starts. */
  judgeMode: judgeModeSchema.optional(),
  /** How the jobs the policy starts reach the model. */
  llmMode: llmModeSchema.optional(),
};

export const createPolicySchema = z.strictObject({
  ...policyFields,
  status: policyFields.status.default("ACTIVE"),
  conditions: policyFields.conditions.default([]),
});
export type CreatePolicyInput = z.infer<typeof createPolicySchema>;

export const updatePolicySchema = z
  .strictObject(policyFields)
  .partial()
  .refine((patch) => Object.keys(patch).length > 0, "send at least one field to change");

export interface MetricPolicy extends CreatePolicyInput {
  id: string;
  createdAt: string;
  updatedAt: string;
}
