/**
 * Built-in programmatic metrics: pure, deterministic functions of a call. Offsets are
 * milliseconds from the start of the call.
 */
import { z } from "zod";
import type { Call, TranscriptSegment } from "../schemas/call.ts";

const builtInMetricKinds = [
  "CALL_DURATION",
  "AGENT_TALK_RATIO",
  "TURN_COUNT",
  "AGENT_RESPONSE_LATENCY_MEAN",
  "AGENT_RESPONSE_LATENCY_P95",
  "INTERRUPTION_COUNT",
  "WORDS_PER_MINUTE",
  "KEYWORD_MATCH_COUNT",
] as const;
export type BuiltInMetricKind = (typeof builtInMetricKinds)[number];

export const builtInConfigSchema = z
  .strictObject({
    kind: z.enum(builtInMetricKinds),
    keywords: z.array(z.string().trim().min(1).max(200)).min(1).max(100).optional(),
    pattern: z.string().min(1).max(500).optional(),
    flags: z
      .string()
      .regex(/^[imsu]*$/, "only the flags i, m, s and u are allowed")
      .optional(),
    role: z.enum(["AGENT", "CUSTOMER"]).optional(),
  })
  .superRefine((config, ctx) => {
    if (config.kind === "KEYWORD_MATCH_COUNT" && !config.keywords === !config.pattern) {
      ctx.addIssue({ code: "custom", path: ["keywords"], message: "give exactly one of keywords or pattern" });
    }
    if (config.pattern !== undefined) {
      try {
        new RegExp(config.pattern, config.flags);
      } catch (error) {
        ctx.addIssue({
          code: "custom",
          path: ["pattern"],
          message: `invalid regular expression: ${(error as Error).message}`,
        });
      }
    }
  });
export type BuiltInConfig = z.infer<typeof builtInConfigSchema>;

export type BuiltInResult =
  | { status: "SUCCESS"; value: number; reasoning: string }
  | { status: "DATA_MISSING"; reasoning: string }
  | { status: "NOT_APPLICABLE"; reasoning: string };

type CallInput = Pick<Call, "transcript" | "startedAt" | "endedAt" | "durationMs">;

const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits;
const seconds = (ms: number) => `${round(ms / 1000)} s`;
const duration = (segment: TranscriptSegment) => Math.max(0, segment.endOffsetMs - segment.startOffsetMs);
const missing = (reasoning: string): BuiltInResult => ({ status: "DATA_MISSING", reasoning });
const success = (value: number, reasoning: string): BuiltInResult => ({ status: "SUCCESS", value, reasoning });
const byStart = (transcript: TranscriptSegment[]) => [...transcript].sort((a, b) => a.startOffsetMs - b.startOffsetMs);

/** Consecutive segments of one speaker form one turn. */
function turns(transcript: TranscriptSegment[]) {
  const result: { role: TranscriptSegment["role"]; start: number; end: number }[] = [];
  for (const segment of byStart(transcript)) {
    const last = result.at(-1);
    if (last && last.role === segment.role) last.end = Math.max(last.end, segment.endOffsetMs);
    else result.push({ role: segment.role, start: segment.startOffsetMs, end: segment.endOffsetMs });
  }
  return result;
}

/** Latency from each customer turn's end to the agent turn that follows it; overlaps count 0. */
function responseLatencies(transcript: TranscriptSegment[]): number[] {
  const all = turns(transcript);
  const latencies: number[] = [];
  for (let i = 1; i < all.length; i++) {
    const previous = all[i - 1];
    const current = all[i];
    if (previous?.role === "CUSTOMER" && current?.role === "AGENT") {
      latencies.push(Math.max(0, current.start - previous.end));
    }
  }
  return latencies;
}

/** Nearest-rank percentile. */
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

function countMatches(regex: RegExp, text: string): number {
  let count = 0;
  regex.lastIndex = 0;
  for (let match = regex.exec(text); match; match = regex.exec(text)) {
    count++;
    // A zero-length match would otherwise match at the same index forever.
    if (match[0].length === 0) regex.lastIndex++;
  }
  return count;
}

function keywordRegex(config: BuiltInConfig): RegExp {
  if (config.pattern) {
    const flags = new Set([...(config.flags ?? ""), "g"]);
    return new RegExp(config.pattern, [...flags].join(""));
  }
  // Whole words or phrases; \p{L}/\p{N} boundaries so accented words count correctly.
  const alternatives = (config.keywords ?? []).map((k) => escapeRegExp(k).replace(/\s+/g, "\\s+"));
  return new RegExp(`(?<![\\p{L}\\p{N}])(?:${alternatives.join("|")})(?![\\p{L}\\p{N}])`, "giu");
}

function callDuration(transcript: TranscriptSegment[], _config: BuiltInConfig, call: CallInput): BuiltInResult {
  if (call.durationMs !== undefined) return success(call.durationMs, `Call lasted ${seconds(call.durationMs)}.`);
  if (call.endedAt) {
    const ms = Date.parse(call.endedAt) - Date.parse(call.startedAt);
    return success(ms, `Call lasted ${seconds(ms)} (endedAt − startedAt).`);
  }
  if (transcript.length === 0) return missing("No duration, end time or transcript to measure.");
  const ms = Math.max(...transcript.map((s) => s.endOffsetMs)) - Math.min(...transcript.map((s) => s.startOffsetMs));
  return success(ms, `Transcript spans ${seconds(ms)}.`);
}

function agentTalkRatio(transcript: TranscriptSegment[]): BuiltInResult {
  const total = transcript.reduce((sum, s) => sum + duration(s), 0);
  if (total === 0) return missing("The transcript has no speech to measure.");
  const agent = transcript.filter((s) => s.role === "AGENT").reduce((sum, s) => sum + duration(s), 0);
  const ratio = round((agent / total) * 100);
  return success(ratio, `Agent spoke ${ratio}% of ${seconds(total)} of speech.`);
}

function turnCount(transcript: TranscriptSegment[]): BuiltInResult {
  if (transcript.length === 0) return missing("The transcript is empty.");
  const count = turns(transcript).length;
  return success(count, `${count} speaker turns over ${transcript.length} segments.`);
}

function responseLatency(transcript: TranscriptSegment[], config: BuiltInConfig): BuiltInResult {
  const latencies = responseLatencies(transcript);
  if (latencies.length === 0) return missing("No agent reply follows a customer turn.");
  if (config.kind === "AGENT_RESPONSE_LATENCY_MEAN") {
    const mean = Math.round(latencies.reduce((a, b) => a + b, 0) / latencies.length);
    return success(mean, `Mean agent response latency ${mean} ms over ${latencies.length} replies.`);
  }
  const p95 = percentile(latencies, 95);
  return success(p95, `95th percentile agent response latency ${p95} ms over ${latencies.length} replies.`);
}

function interruptionCount(transcript: TranscriptSegment[]): BuiltInResult {
  if (transcript.length === 0) return missing("The transcript is empty.");
  const sorted = byStart(transcript);
  let count = 0;
  const lastEndByRole = new Map<string, number>();
  for (const segment of sorted) {
    const otherRole = segment.role === "AGENT" ? "CUSTOMER" : "AGENT";
    if (segment.startOffsetMs < (lastEndByRole.get(otherRole) ?? -1)) count++;
    lastEndByRole.set(segment.role, Math.max(lastEndByRole.get(segment.role) ?? 0, segment.endOffsetMs));
  }
  return success(count, `${count} turns started while the other speaker was still talking.`);
}

function wordsPerMinute(transcript: TranscriptSegment[], config: BuiltInConfig): BuiltInResult {
  const role = config.role ?? "AGENT";
  const segments = transcript.filter((s) => s.role === role);
  const ms = segments.reduce((sum, s) => sum + duration(s), 0);
  if (ms === 0) return missing(`The ${role.toLowerCase()} never speaks.`);
  const words = segments.reduce((sum, s) => sum + s.text.split(/\s+/).filter(Boolean).length, 0);
  const wpm = round(words / (ms / 60_000));
  return success(wpm, `${words} ${role.toLowerCase()} words in ${seconds(ms)} of speech: ${wpm} wpm.`);
}

function keywordMatchCount(transcript: TranscriptSegment[], config: BuiltInConfig): BuiltInResult {
  if (transcript.length === 0) return missing("The transcript is empty.");
  const segments = config.role ? transcript.filter((s) => s.role === config.role) : transcript;
  const regex = keywordRegex(config);
  const count = segments.reduce((sum, s) => sum + countMatches(regex, s.text), 0);
  const what = config.pattern ? `/${config.pattern}/` : config.keywords?.join(", ");
  return success(count, `${count} matches of ${what}${config.role ? ` in ${config.role.toLowerCase()} speech` : ""}.`);
}

/** How each built-in metric is computed from a call. */
const computeByKind: Record<
  BuiltInConfig["kind"],
  (transcript: TranscriptSegment[], config: BuiltInConfig, call: CallInput) => BuiltInResult
> = {
  CALL_DURATION: callDuration,
  AGENT_TALK_RATIO: agentTalkRatio,
  TURN_COUNT: turnCount,
  AGENT_RESPONSE_LATENCY_MEAN: responseLatency,
  AGENT_RESPONSE_LATENCY_P95: responseLatency,
  INTERRUPTION_COUNT: interruptionCount,
  WORDS_PER_MINUTE: wordsPerMinute,
  KEYWORD_MATCH_COUNT: keywordMatchCount,
};

export function computeBuiltInMetric(config: BuiltInConfig, call: CallInput): BuiltInResult {
  return computeByKind[config.kind](call.transcript ?? [], config, call);
}
