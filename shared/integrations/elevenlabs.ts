/**
 * ElevenLabs' `post_call_transcription` webhook as a Call. ElevenLabs documents the payload
 * as `{type, event_timestamp, data}`, `data` holding the conversation: its transcript turns
 * (`time_in_call_secs`; a turn ends where the next begins), their tool calls and results,
 * `metadata` (start, duration, the phone call when there was one) and `analysis`.
 */
import { z } from "zod";
import type { CreateCallInput, TranscriptSegment } from "../schemas/call.ts";
import { callProperties, flattened, isoFromMs, missingField, secondsToMs, toolParameters } from "./call-fields.ts";

const toolCallSchema = z
  .object({
    request_id: z.string().optional(),
    tool_name: z.string().optional(),
    params_as_json: z.unknown().optional(),
  })
  .passthrough();
const toolResultSchema = z
  .object({ request_id: z.string().optional(), result_value: z.unknown().optional(), is_error: z.boolean().optional() })
  .passthrough();
const turnSchema = z
  .object({
    role: z.string(),
    message: z.string().nullish(),
    time_in_call_secs: z.number().optional(),
    tool_calls: z.array(toolCallSchema).nullish(),
    tool_results: z.array(toolResultSchema).nullish(),
  })
  .passthrough();

export const elevenLabsEventSchema = z
  .object({
    type: z.string(),
    data: z
      .object({
        conversation_id: z.string().optional(),
        agent_id: z.string().optional(),
        transcript: z.array(turnSchema).optional(),
        metadata: z
          .object({
            start_time_unix_secs: z.number().optional(),
            call_duration_secs: z.number().optional(),
            termination_reason: z.string().optional(),
            phone_call: z.record(z.string(), z.unknown()).nullish(),
          })
          .passthrough()
          .optional(),
        analysis: z
          .object({
            call_successful: z.string().optional(),
            transcript_summary: z.string().optional(),
            evaluation_criteria_results: z
              .record(z.string(), z.object({ result: z.unknown() }).passthrough())
              .optional(),
            data_collection_results: z.record(z.string(), z.object({ value: z.unknown() }).passthrough()).optional(),
          })
          .passthrough()
          .nullish(),
        conversation_initiation_client_data: z
          .object({ dynamic_variables: z.record(z.string(), z.unknown()).optional() })
          .passthrough()
          .nullish(),
      })
      .passthrough()
      .optional(),
  })
  .passthrough();
export type ElevenLabsEvent = z.infer<typeof elevenLabsEventSchema>;

/** The one event that carries a finished conversation's transcript; audio and failures are ignored. */
export const ELEVENLABS_CALL_EVENTS = new Set(["post_call_transcription"]);

function transcriptOf(turns: z.infer<typeof turnSchema>[], durationMs: number | undefined): TranscriptSegment[] {
  const spoken = turns.filter((turn) => (turn.role === "agent" || turn.role === "user") && turn.message);
  return spoken.map((turn, index) => {
    const start = secondsToMs(turn.time_in_call_secs ?? 0);
    const next = spoken[index + 1]?.time_in_call_secs;
    const end = next !== undefined ? secondsToMs(next) : (durationMs ?? start);
    return {
      role: turn.role === "agent" ? ("AGENT" as const) : ("CUSTOMER" as const),
      text: turn.message ?? "",
      startOffsetMs: start,
      endOffsetMs: Math.max(start, end),
    };
  });
}

/** Each tool call at its turn's time, joined to its result by `request_id`. */
function toolInvocationsOf(turns: z.infer<typeof turnSchema>[]) {
  const results = new Map(
    turns.flatMap((turn) => (turn.tool_results ?? []).map((result) => [result.request_id, result] as const)),
  );
  return turns.flatMap((turn) =>
    (turn.tool_calls ?? []).map((toolCall) => {
      const parameters = toolParameters(toolCall.params_as_json, "params");
      const result = results.get(toolCall.request_id);
      return {
        name: toolCall.tool_name ?? "tool",
        ...(turn.time_in_call_secs !== undefined ? { startOffsetMs: secondsToMs(turn.time_in_call_secs) } : {}),
        ...(parameters ? { parameters } : {}),
        ...(result ? { result: result.result_value } : {}),
      };
    }),
  );
}

export function elevenLabsCall(
  event: ElevenLabsEvent,
  integration: { agentMapping?: Record<string, string>; properties?: Record<string, string> },
): CreateCallInput {
  const data = event.data;
  if (!data) throw missingField("data");
  if (!data.conversation_id) throw missingField("data.conversation_id");
  if (!data.agent_id) throw missingField("data.agent_id");
  const startSeconds = data.metadata?.start_time_unix_secs;
  if (startSeconds === undefined) throw missingField("data.metadata.start_time_unix_secs");
  const durationMs =
    data.metadata?.call_duration_secs === undefined ? undefined : secondsToMs(data.metadata.call_duration_secs);
  const phoneCall = data.metadata?.phone_call ?? undefined;
  const analysis = data.analysis ?? undefined;
  const mapped: [string, string][] = [
    ...flattened("", { terminationReason: data.metadata?.termination_reason || undefined }),
    ...flattened("phoneCall", phoneCall),
    ...flattened("", {
      callSuccessful: analysis?.call_successful,
      transcriptSummary: analysis?.transcript_summary,
    }),
    ...Object.entries(analysis?.evaluation_criteria_results ?? {}).flatMap(([id, result]) =>
      flattened(`evaluation.${id}`, result.result),
    ),
    ...Object.entries(analysis?.data_collection_results ?? {}).flatMap(([id, result]) =>
      flattened(`dataCollection.${id}`, result.value),
    ),
    ...flattened("dynamicVariables", data.conversation_initiation_client_data?.dynamic_variables),
  ];
  const turns = data.transcript ?? [];
  const toolInvocations = toolInvocationsOf(turns);
  return {
    externalId: data.conversation_id,
    agentId: integration.agentMapping?.[data.agent_id] ?? data.agent_id,
    callDirection: phoneCall?.direction === "outbound" ? "OUTBOUND" : "INBOUND",
    interfaceType: phoneCall ? "PHONE" : "WEB",
    startedAt: isoFromMs(startSeconds * 1000),
    ...(durationMs !== undefined ? { endedAt: isoFromMs(startSeconds * 1000 + durationMs), durationMs } : {}),
    properties: callProperties(integration.properties, mapped),
    transcript: transcriptOf(turns, durationMs),
    ...(toolInvocations.length > 0 ? { toolInvocations } : {}),
  };
}
