import { z } from "zod";

/** Values per request: each is its own small transaction. */
export const MAX_RECORDED_VALUES_PER_REQUEST = 500;

/** What a value the agent recorded carries besides its call. */
const valueFields = {
  id: z.string().trim().min(1).max(128).describe("Your id for the value: sending it again for the call stores nothing"),
  name: z
    .string()
    .regex(
      /^[a-z0-9][a-z0-9_-]{0,62}$/,
      "use 1-63 lowercase letters, digits, '-' or '_', starting with a letter or digit",
    )
    .describe("The metric's name in analytics (not a metric definition's slug)"),
  value: z
    .union([z.number().finite(), z.boolean()])
    .describe("A number (summed, as a counter) or a boolean (pass rate)"),
  labels: z
    .record(z.string().min(1).max(128), z.string().max(256))
    .refine((labels) => Object.keys(labels).length <= 10, "at most 10 labels")
    .optional()
    .describe("Labels of this value (e.g. topic), beside the call's: for groupBy and tags"),
};

/** Values recorded with their call (POST /v1/call's customMetrics). */
export const callRecordedValuesSchema = z.array(z.strictObject(valueFields)).max(MAX_RECORDED_VALUES_PER_REQUEST);

/** A value the agent recorded itself (VoiceRun's custom metrics): a counter or a flag of one call. */
export const recordedValueSchema = z
  .strictObject({
    ...valueFields,
    callId: z.string().trim().min(1).max(256).optional(),
    externalId: z
      .string()
      .trim()
      .min(1)
      .max(256)
      .optional()
      .describe("The call's externalId (your session id), instead of callId"),
  })
  .superRefine((value, context) => {
    if ((value.callId === undefined) === (value.externalId === undefined)) {
      context.addIssue({ code: "custom", path: ["callId"], message: "send callId or externalId" });
    }
  });
export type RecordedValueInput = z.infer<typeof recordedValueSchema>;

export const recordValuesBodySchema = z.strictObject({
  values: z.array(recordedValueSchema).min(1).max(MAX_RECORDED_VALUES_PER_REQUEST),
});

export const recordValuesResultSchema = z.object({
  recorded: z.number().int().describe("Values stored now"),
  duplicates: z.number().int().describe("Values whose id was stored for the call before: nothing changed"),
});
