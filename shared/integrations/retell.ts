/**
 * Retell's `call_ended` and `call_analyzed` webhooks as a Call. Retell documents the payload
 * as `{event, call}`; `call_analyzed` follows `call_ended` for the same call with its
 * analysis, which updates that call's properties rather than creating a second call.
 */
import { z } from "zod";
import type { CreateCallInput, TranscriptSegment } from "../schemas/call.ts";
import { callProperties, flattened, isoFromMs, missingField, secondsToMs, toolParameters } from "./call-fields.ts";

const wordSchema = z.object({ start: z.number().optional(), end: z.number().optional() }).passthrough();
const utteranceSchema = z
  .object({ role: z.string(), content: z.string().optional(), words: z.array(wordSchema).optional() })
  .passthrough();
const toolEntrySchema = z
  .object({
    role: z.string(),
    tool_call_id: z.string().optional(),
    name: z.string().optional(),
    arguments: z.unknown().optional(),
    content: z.unknown().optional(),
  })
  .passthrough();

export const retellEventSchema = z
  .object({
    event: z.string(),
    call: z
      .object({
        call_id: z.string().optional(),
        agent_id: z.string().optional(),
        call_type: z.string().optional(),
        direction: z.string().optional(),
        start_timestamp: z.number().optional(),
        end_timestamp: z.number().optional(),
        duration_ms: z.number().optional(),
        transcript_object: z.array(utteranceSchema).optional(),
        transcript_with_tool_calls: z.array(toolEntrySchema).optional(),
        metadata: z.record(z.string(), z.unknown()).optional(),
        retell_llm_dynamic_variables: z.record(z.string(), z.unknown()).optional(),
        call_analysis: z.record(z.string(), z.unknown()).optional(),
        disconnection_reason: z.string().optional(),
        recording_url: z.string().optional(),
        from_number: z.string().optional(),
        to_number: z.string().optional(),
      })
      .passthrough(),
  })
  .passthrough();
export type RetellEvent = z.infer<typeof retellEventSchema>;

/** The events that carry a finished call; others (call_started, transcript updates) are ignored. */
export const RETELL_CALL_EVENTS = new Set(["call_ended", "call_analyzed"]);

/** Utterances with the offsets of their first and last words; without words, right after the previous one. */
function transcriptOf(utterances: z.infer<typeof utteranceSchema>[]): TranscriptSegment[] {
  let previousEnd = 0;
  return utterances
    .filter((utterance) => utterance.role === "agent" || utterance.role === "user")
    .map((utterance) => {
      const words = utterance.words ?? [];
      const first = words[0]?.start;
      const last = words.at(-1)?.end;
      const start = first === undefined ? previousEnd : secondsToMs(first);
      const end = Math.max(start, last === undefined ? start : secondsToMs(last));
      previousEnd = end;
      return {
        role: utterance.role === "agent" ? ("AGENT" as const) : ("CUSTOMER" as const),
        text: utterance.content ?? "",
        startOffsetMs: start,
        endOffsetMs: end,
      };
    });
}

/** Tool calls joined to their results by `tool_call_id`. */
function toolInvocationsOf(entries: z.infer<typeof toolEntrySchema>[]) {
  const results = new Map(
    entries.filter((entry) => entry.role === "tool_call_result").map((entry) => [entry.tool_call_id, entry.content]),
  );
  return entries
    .filter((entry) => entry.role === "tool_call_invocation")
    .map((entry) => {
      const parameters = toolParameters(entry.arguments, "arguments");
      return {
        name: entry.name ?? "tool",
        ...(parameters ? { parameters } : {}),
        ...(results.has(entry.tool_call_id) ? { result: results.get(entry.tool_call_id) } : {}),
      };
    });
}

/** The analysis `call_analyzed` adds, as properties. */
export const retellAnalysisProperties = (event: RetellEvent) => flattened("callAnalysis", event.call.call_analysis);

export function retellCall(
  event: RetellEvent,
  integration: { agentMapping?: Record<string, string>; properties?: Record<string, string> },
): CreateCallInput {
  const { call } = event;
  if (!call.call_id) throw missingField("call.call_id");
  if (!call.agent_id) throw missingField("call.agent_id");
  if (call.start_timestamp === undefined) throw missingField("call.start_timestamp");
  const endedAt = call.end_timestamp;
  const mapped: [string, string][] = [
    ...flattened("", {
      disconnectionReason: call.disconnection_reason,
      recordingUrl: call.recording_url,
      fromNumber: call.from_number,
      toNumber: call.to_number,
    }),
    ...flattened("metadata", call.metadata),
    ...flattened("dynamicVariables", call.retell_llm_dynamic_variables),
    ...retellAnalysisProperties(event),
  ];
  const toolInvocations = toolInvocationsOf(call.transcript_with_tool_calls ?? []);
  return {
    externalId: call.call_id,
    agentId: integration.agentMapping?.[call.agent_id] ?? call.agent_id,
    callDirection: call.direction === "outbound" ? "OUTBOUND" : "INBOUND",
    interfaceType: call.call_type === "web_call" ? "WEB" : "PHONE",
    startedAt: isoFromMs(call.start_timestamp),
    ...(endedAt !== undefined && endedAt >= call.start_timestamp
      ? { endedAt: isoFromMs(endedAt), durationMs: call.duration_ms ?? endedAt - call.start_timestamp }
      : {}),
    properties: callProperties(integration.properties, mapped),
    transcript: transcriptOf(call.transcript_object ?? []),
    ...(toolInvocations.length > 0 ? { toolInvocations } : {}),
  };
}
