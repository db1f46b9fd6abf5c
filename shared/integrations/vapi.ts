/**
 * Vapi's `end-of-call-report` server message as a Call. Vapi posts `{message: {type, call,
 * artifact, endedReason, startedAt, endedAt, analysis, assistant, …}}`; the transcript is in
 * `artifact.messages` (bot and user turns with `secondsFromStart`, `time` and `endTime`,
 * tool calls and their results between them).
 */
import { z } from "zod";
import type { CreateCallInput, TranscriptSegment } from "../schemas/call.ts";
import { callProperties, flattened, missingField, secondsToMs, toolParameters } from "./call-fields.ts";

const messageSchema = z
  .object({
    role: z.string(),
    message: z.string().optional(),
    time: z.number().optional(),
    endTime: z.number().optional(),
    secondsFromStart: z.number().optional(),
    toolCalls: z
      .array(
        z
          .object({
            id: z.string().optional(),
            function: z
              .object({ name: z.string().optional(), arguments: z.unknown().optional() })
              .passthrough()
              .optional(),
          })
          .passthrough(),
      )
      .optional(),
    toolCallId: z.string().optional(),
    result: z.unknown().optional(),
  })
  .passthrough();

export const vapiEventSchema = z
  .object({
    message: z
      .object({
        type: z.string(),
        endedReason: z.string().optional(),
        startedAt: z.string().optional(),
        endedAt: z.string().optional(),
        durationSeconds: z.number().optional(),
        call: z
          .object({
            id: z.string().optional(),
            assistantId: z.string().optional(),
            type: z.string().optional(),
            startedAt: z.string().optional(),
            endedAt: z.string().optional(),
          })
          .passthrough()
          .optional(),
        artifact: z
          .object({ messages: z.array(messageSchema).optional(), recordingUrl: z.string().optional() })
          .passthrough()
          .optional(),
        recordingUrl: z.string().optional(),
        analysis: z
          .object({ summary: z.string().optional(), successEvaluation: z.unknown().optional() })
          .passthrough()
          .optional(),
        assistant: z
          .object({ metadata: z.record(z.string(), z.unknown()).optional() })
          .passthrough()
          .optional(),
      })
      .passthrough(),
  })
  .passthrough();
export type VapiEvent = z.infer<typeof vapiEventSchema>;

/** The one server message that carries a finished call; status updates, transcripts in flight and the like are ignored. */
export const VAPI_CALL_EVENTS = new Set(["end-of-call-report"]);

function transcriptOf(messages: z.infer<typeof messageSchema>[]): TranscriptSegment[] {
  return messages
    .filter((m) => (m.role === "bot" || m.role === "assistant" || m.role === "user") && m.message)
    .map((m) => {
      const start = secondsToMs(m.secondsFromStart ?? 0);
      const spoken = m.time !== undefined && m.endTime !== undefined ? Math.max(0, m.endTime - m.time) : 0;
      return {
        role: m.role === "user" ? ("CUSTOMER" as const) : ("AGENT" as const),
        text: m.message ?? "",
        startOffsetMs: start,
        endOffsetMs: start + Math.round(spoken),
      };
    });
}

/** Tool calls joined to their results by `toolCallId`, at the time of the message that made them. */
function toolInvocationsOf(messages: z.infer<typeof messageSchema>[]) {
  const results = new Map(
    messages.filter((m) => m.role === "tool_call_result").map((m) => [m.toolCallId, m.result] as const),
  );
  return messages
    .filter((m) => m.role === "tool_calls")
    .flatMap((m) =>
      (m.toolCalls ?? []).map((toolCall) => {
        const parameters = toolParameters(toolCall.function?.arguments, "arguments");
        return {
          name: toolCall.function?.name ?? "tool",
          ...(m.secondsFromStart !== undefined ? { startOffsetMs: secondsToMs(m.secondsFromStart) } : {}),
          ...(parameters ? { parameters } : {}),
          ...(results.has(toolCall.id) ? { result: results.get(toolCall.id) } : {}),
        };
      }),
    );
}

export function vapiCall(
  event: VapiEvent,
  integration: { agentMapping?: Record<string, string>; properties?: Record<string, string> },
): CreateCallInput {
  const { message } = event;
  const call = message.call;
  if (!call?.id) throw missingField("message.call.id");
  if (!call.assistantId) throw missingField("message.call.assistantId");
  const startedAt = message.startedAt ?? call.startedAt;
  if (!startedAt || Number.isNaN(Date.parse(startedAt))) throw missingField("message.startedAt");
  const endedAt = message.endedAt ?? call.endedAt;
  const startMs = Date.parse(startedAt);
  const endMs = endedAt ? Date.parse(endedAt) : Number.NaN;
  const ended = Number.isFinite(endMs) && endMs >= startMs;
  const mapped: [string, string][] = [
    ...flattened("", {
      endedReason: message.endedReason,
      recordingUrl: message.artifact?.recordingUrl ?? message.recordingUrl,
      summary: message.analysis?.summary,
      successEvaluation: message.analysis?.successEvaluation,
    }),
    ...flattened("assistantMetadata", message.assistant?.metadata),
  ];
  const messages = message.artifact?.messages ?? [];
  const toolInvocations = toolInvocationsOf(messages);
  return {
    externalId: call.id,
    agentId: integration.agentMapping?.[call.assistantId] ?? call.assistantId,
    callDirection: call.type === "outboundPhoneCall" ? "OUTBOUND" : "INBOUND",
    interfaceType: call.type === "webCall" ? "WEB" : "PHONE",
    startedAt: new Date(startMs).toISOString(),
    ...(ended ? { endedAt: new Date(endMs).toISOString(), durationMs: endMs - startMs } : {}),
    properties: callProperties(integration.properties, mapped),
    transcript: transcriptOf(messages),
    ...(toolInvocations.length > 0 ? { toolInvocations } : {}),
  };
}
