import { z } from "zod";
import { callRecordedValuesSchema } from "./recorded.ts";

/** A call's limits (a platform's payload beyond them is cut to them, shared/integrations/ingest.ts). */
export const MAX_SEGMENT_TEXT_CHARS = 100_000;
export const MAX_TRANSCRIPT_SEGMENTS = 100_000;
export const MAX_TOOL_INVOCATIONS = 10_000;

export const transcriptSegmentSchema = z.object({
  role: z.enum(["AGENT", "CUSTOMER"]),
  text: z.string().max(MAX_SEGMENT_TEXT_CHARS),
  startOffsetMs: z.number().int().nonnegative(),
  endOffsetMs: z.number().int().nonnegative(),
});
export type TranscriptSegment = z.infer<typeof transcriptSegmentSchema>;

export const toolInvocationSchema = z.object({
  name: z.string().min(1).max(200),
  startOffsetMs: z.number().int().nonnegative().optional(),
  endOffsetMs: z.number().int().nonnegative().optional(),
  parameters: z.record(z.string(), z.unknown()).optional(),
  result: z.unknown().optional(),
});

const propertiesSchema = z
  .record(z.string().min(1).max(128), z.string().max(1024))
  .refine((props) => Object.keys(props).length <= 50, "at most 50 properties");

const callFields = {
  externalId: z.string().min(1).max(256).optional(),
  agentId: z.string().min(1).max(256),
  environmentId: z.string().min(1).max(256).optional(),
  callDirection: z.enum(["INBOUND", "OUTBOUND"]).default("INBOUND"),
  interfaceType: z.enum(["PHONE", "WEB"]).default("PHONE"),
  startedAt: z.iso.datetime({ offset: true }),
  endedAt: z.iso.datetime({ offset: true }).optional(),
  durationMs: z.number().int().nonnegative().optional(),
  properties: propertiesSchema.default({}),
  transcript: z.array(transcriptSegmentSchema).max(MAX_TRANSCRIPT_SEGMENTS).default([]),
  toolInvocations: z.array(toolInvocationSchema).max(MAX_TOOL_INVOCATIONS).optional(),
};
const endsAfterStart = (call: { startedAt: string; endedAt?: string }) =>
  !call.endedAt || Date.parse(call.endedAt) >= Date.parse(call.startedAt);
const endedAtIssue = { path: ["endedAt"], message: "endedAt must not be before startedAt" };

export const createCallSchema = z.object(callFields).refine(endsAfterStart, endedAtIssue);
export type CreateCallInput = z.infer<typeof createCallSchema>;

/** POST /v1/call's body: a call, and the values its agent recorded (VoiceRun's custom metrics). */
export const createCallBodySchema = z
  .object({
    ...callFields,
    customMetrics: callRecordedValuesSchema
      .optional()
      .describe(
        "Values the agent recorded in this call, as POST /v1/custom-metrics/values takes them (without the call)",
      ),
  })
  .refine(endsAfterStart, endedAtIssue);

/** A stored call as the API returns it. */
export interface Call extends CreateCallInput {
  id: string;
  createdAt: string;
}

/** A message of a transcript sent inline (CollieAI's `messages`): a role and its text. */
export const inlineMessageSchema = z.strictObject({
  role: z.enum(["AGENT", "CUSTOMER"]),
  text: z.string().max(100_000),
});
export type InlineMessage = z.infer<typeof inlineMessageSchema>;

/** The id an inline transcript's values carry: it is never stored. */
export const INLINE_CALL_ID = "inline";

/**
 * A call built from an inline transcript (a whole call, messages, or one customer message).
 * Messages get one synthetic second each: timing metrics need a call with real offsets.
 */
export function inlineCall(input: { call?: CreateCallInput; messages?: InlineMessage[]; message?: string }): Call {
  const now = new Date().toISOString();
  if (input.call) return { ...input.call, id: INLINE_CALL_ID, createdAt: now };
  const messages = input.messages ?? [{ role: "CUSTOMER" as const, text: input.message ?? "" }];
  return {
    id: INLINE_CALL_ID,
    agentId: INLINE_CALL_ID,
    callDirection: "INBOUND",
    interfaceType: "WEB",
    startedAt: now,
    durationMs: messages.length * 1000,
    properties: {},
    transcript: messages.map((message, index) => ({
      ...message,
      startOffsetMs: index * 1000,
      endOffsetMs: (index + 1) * 1000,
    })),
    createdAt: now,
  };
}
