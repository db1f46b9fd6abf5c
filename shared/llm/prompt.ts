/**
 * The judge's request. System prompt and transcript are identical for every metric of a
 * call and end in a `cache_control` breakpoint, so the second and later metrics of a call
 * read that prefix from Anthropic's prompt cache; only the short metric-specific question
 * after it is billed at the full input price.
 *
 * The answer is structured output (`output_config.format`): constrained decoding makes it
 * a JSON object of the judgment schema, which works with thinking models, unlike a forced
 * tool choice. The format is part of the prompt cache's key, so every metric shares one
 * schema and the value's type per metric is checked after (judgment.ts).
 */
import type Anthropic from "@anthropic-ai/sdk";
import { zodOutputFormat } from "@anthropic-ai/sdk/helpers/zod";
import { z } from "zod";
import type { Call } from "../schemas/call.ts";
import type { MetricDefinition } from "../schemas/metric.ts";
import { judgmentAnswerSchema } from "./judgment.ts";

/** Stable ids: the segment's index in the stored transcript. */
const segmentId = (index: number) => `s${index}`;

/** The JSON schema the SDK derives from the zod schema (limits it cannot enforce folded into descriptions). */
const JUDGMENT_FORMAT: Anthropic.JSONOutputFormat = {
  type: "json_schema",
  schema: zodOutputFormat(judgmentAnswerSchema).schema,
};

const ROLE = "You evaluate conversations between an AI agent and a customer against quality metrics.";
const TRANSCRIPT_FORMAT =
  "The transcript comes first; each line starts with its segment id in brackets, the time from the start of the call, and the speaker.";
const APPLICABILITY = "Set applicable to false only when the question cannot apply to this call.";
const ANSWER_ORDER =
  "first the segments the judgment rests on and your reasoning, then whether the question applies, the value of exactly the requested type, and your confidence.";

const SYSTEM_PROMPT = [
  ROLE,
  TRANSCRIPT_FORMAT,
  `Judge only from the transcript. Answer with one JSON object: ${ANSWER_ORDER}`,
  APPLICABILITY,
].join("\n");

const GROUPED_SYSTEM_PROMPT = [
  ROLE,
  TRANSCRIPT_FORMAT,
  "Several questions follow, each under its key in brackets ([q1], [q2], …). Judge each one on its own, only from the transcript.",
  `Answer with one JSON object holding one answer per question, under the question's key; in each answer, ${ANSWER_ORDER}`,
  APPLICABILITY,
].join("\n");

function timestamp(ms: number): string {
  const totalSeconds = ms / 1000;
  const minutes = Math.floor(totalSeconds / 60);
  const seconds = (totalSeconds % 60).toFixed(1).padStart(4, "0");
  return `${String(minutes).padStart(2, "0")}:${seconds}`;
}

export function renderTranscript(call: Pick<Call, "transcript">): string {
  const lines = call.transcript.map(
    (segment, index) => `[${segmentId(index)}] ${timestamp(segment.startOffsetMs)} ${segment.role}: ${segment.text}`,
  );
  return `<transcript>\n${lines.join("\n")}\n</transcript>`;
}

/** A tool call's parameters or result, cut to keep one invocation's line short. */
const MAX_TOOL_JSON_CHARS = 500;

const compactJson = (value: unknown) => {
  const json = JSON.stringify(value ?? null);
  return json.length > MAX_TOOL_JSON_CHARS ? `${json.slice(0, MAX_TOOL_JSON_CHARS)}…` : json;
};

/**
 * The call context a definition asks for (`include`), in a stable order: tool invocations
 * with their time, parameters and result, then the chosen properties. Undefined when there
 * is nothing to show.
 */
function renderContext(call: Pick<Call, "toolInvocations" | "properties">, include: readonly string[]) {
  const names = new Set(include);
  const sections: string[] = [];
  if (names.has("toolInvocations")) {
    const lines = (call.toolInvocations ?? []).map(
      (tool, index) =>
        `[t${index}] ${tool.startOffsetMs === undefined ? "--:--.-" : timestamp(tool.startOffsetMs)} ${tool.name}(${compactJson(tool.parameters)}) → ${compactJson(tool.result)}`,
    );
    sections.push(`<tool_invocations>\n${lines.length > 0 ? lines.join("\n") : "(none)"}\n</tool_invocations>`);
  }
  const keys = [...names].filter((name) => name.startsWith("properties.")).sort();
  if (keys.length > 0) {
    const lines = keys.map((name) => {
      const key = name.slice("properties.".length);
      return `${key}: ${call.properties?.[key] ?? "(not set)"}`;
    });
    sections.push(`<call_properties>\n${lines.join("\n")}\n</call_properties>`);
  }
  return sections.length > 0 ? sections.join("\n") : undefined;
}

/** How an example's expected answer reads: the value as the answer's JSON would hold it. */
const expectedAnswer = (value: unknown) => (value === null ? "not applicable" : JSON.stringify(value));

/**
 * A definition's few-shot examples: each an excerpt of another call, the answer it calls
 * for and why. Undefined when it has none.
 */
export function renderExamples(definition: Pick<MetricDefinition, "examples">): string | undefined {
  if (!definition.examples?.length) return undefined;
  const rendered = definition.examples.map((example) =>
    [
      "<example>",
      `<excerpt>\n${example.excerpt}\n</excerpt>`,
      `Expected answer: ${expectedAnswer(example.value)}`,
      ...(example.reasoning ? [`Why: ${example.reasoning}`] : []),
      "</example>",
    ].join("\n"),
  );
  return `<examples>\nWorked examples of the question below, from other calls:\n${rendered.join("\n")}\n</examples>`;
}

/**
 * The first turn: the transcript (cached), the context asked for (cached apart, shared by
 * the metrics that ask for the same), the definition's examples (cached with the rest of
 * the prefix, so a corrective retry reads them), then the question. The transcript comes
 * first so that every metric of a call, with or without context and examples, shares it.
 */
function firstTurn(
  call: JudgedCall,
  include: readonly string[],
  question: string,
  { cached, examples }: { cached: boolean; examples?: string },
) {
  const context = renderContext(call, include);
  const cache = cached ? { cache_control: { type: "ephemeral" as const } } : {};
  const block = (text: string) => ({ type: "text" as const, text, ...cache });
  return [
    block(renderTranscript(call)),
    ...(context ? [block(context)] : []),
    ...(examples ? [block(examples)] : []),
    { type: "text" as const, text: question },
  ];
}

type JudgedCall = Pick<Call, "transcript" | "toolInvocations" | "properties">;

/** What a valid `value` is, in words; the fake server and the validator agree with it. */
function answerInstructions(definition: MetricDefinition): string {
  switch (definition.outputType) {
    case "BOOLEAN": {
      const yes = definition.booleanTrueLabel ? ` (true means "${definition.booleanTrueLabel}")` : "";
      const no = definition.booleanFalseLabel ? ` (false means "${definition.booleanFalseLabel}")` : "";
      return `Answer type: BOOLEAN. value must be true${yes} or false${no}.`;
    }
    case "NUMERIC":
      return `Answer type: NUMERIC. value must be a number${definition.unit ? ` in ${definition.unit.name}` : ""}.`;
    case "SCALE": {
      const labels = Object.entries(definition.scaleLabels ?? {})
        .map(([score, label]) => `${score} = ${label}`)
        .join("; ");
      return `Answer type: SCALE. value must be an integer from ${definition.scaleMin} to ${definition.scaleMax}.${labels ? ` Scale: ${labels}.` : ""}`;
    }
    case "CLASSIFICATION":
      return `Answer type: CLASSIFICATION. value must be a list of 1 to ${definition.maxClassifications ?? 1} labels, each exactly one of: ${(definition.classificationOptions ?? []).join(" | ")}.`;
    case "TEXT":
      return "Answer type: TEXT. value must be a short text (at most 1000 characters).";
    case "COUNT":
      return "Answer type: COUNT. value must be a whole number, 0 or more.";
    case "OFFSET":
      return "Answer type: OFFSET. value must be the id of the one transcript segment the question points at, like s4.";
  }
}

export function metricInstructions(definition: MetricDefinition): string {
  return [
    `Metric: ${definition.name}`,
    ...(definition.description ? [`Description: ${definition.description}`] : []),
    `Question: ${definition.llmPrompt ?? definition.name}`,
    answerInstructions(definition),
  ].join("\n");
}

/** Models that take `output_config.effort`; older ones reject it. */
const EFFORT_MODELS = /^claude-(opus-4-[5-9]|opus-5|sonnet-5|haiku-5|fable|mythos)/;

interface RequestOptions {
  model: string;
  maxTokens: number;
  effort?: "low" | "medium" | "high";
}

/** A judgment needs little deliberation; low effort keeps thinking tokens (billed as output) down. */
const effortOf = (options: RequestOptions) =>
  options.effort && EFFORT_MODELS.test(options.model) ? { effort: options.effort } : {};

/** The key of the `index`-th question in a grouped request and its answer. */
export const questionKey = (index: number) => `q${index + 1}`;

/** One format per number of questions: the same for every call of a job, built once per container. */
const groupedFormats = new Map<number, Anthropic.JSONOutputFormat>();

function groupedFormat(questions: number): Anthropic.JSONOutputFormat {
  let format = groupedFormats.get(questions);
  if (!format) {
    const fields = Object.fromEntries(
      Array.from({ length: questions }, (_, i) => [questionKey(i), judgmentAnswerSchema]),
    );
    format = { type: "json_schema", schema: zodOutputFormat(z.object(fields)).schema };
    groupedFormats.set(questions, format);
  }
  return format;
}

/**
 * Every question about one call in one request: the transcript once, an answer per
 * question. No cache breakpoint: the transcript is read once, and a cache write costs
 * 1.25× the input price.
 */
export function buildGroupedJudgeRequest(
  definitions: MetricDefinition[],
  call: JudgedCall,
  options: RequestOptions,
): Anthropic.MessageCreateParamsNonStreaming {
  // Each question with its own examples: they teach that question, not the others.
  const questions = definitions.map((definition, i) => {
    const examples = renderExamples(definition);
    return `[${questionKey(i)}]\n${metricInstructions(definition)}${examples ? `\n${examples}` : ""}`;
  });
  return {
    model: options.model,
    max_tokens: options.maxTokens,
    output_config: { format: groupedFormat(definitions.length), ...effortOf(options) },
    system: GROUPED_SYSTEM_PROMPT,
    messages: [
      {
        role: "user",
        // Every context any of the questions asks for, once.
        content: firstTurn(call, [...new Set(definitions.flatMap((d) => d.include ?? []))], questions.join("\n\n"), {
          cached: false,
        }),
      },
    ],
  };
}

export function buildJudgeRequest(
  definition: MetricDefinition,
  call: JudgedCall,
  options: RequestOptions,
): Anthropic.MessageCreateParamsNonStreaming {
  return {
    model: options.model,
    max_tokens: options.maxTokens,
    output_config: { format: JUDGMENT_FORMAT, ...effortOf(options) },
    system: SYSTEM_PROMPT,
    messages: [
      {
        role: "user",
        content: firstTurn(call, definition.include ?? [], metricInstructions(definition), {
          cached: true,
          examples: renderExamples(definition),
        }),
      },
    ],
  };
}
