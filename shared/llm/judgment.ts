/**
 * Validates the judge's answer against the definition (type, range, options, segment
 * ids) and turns it into an evaluation outcome. Anything off is reported in words the
 * model can act on in its one corrective retry.
 */
import { z } from "zod";
import type { Call } from "../schemas/call.ts";
import type { SegmentRef } from "../schemas/job.ts";
import type { MetricDefinition } from "../schemas/metric.ts";
import { type JudgedValue, valueSchemaOf } from "../schemas/metric-values.ts";
import { segmentExcerpt } from "../store/item-budget.ts";

export interface Judgment {
  captureStatus: "SUCCESS" | "NOT_APPLICABLE";
  context: "CALL" | "SEGMENT" | "SEGMENT_RANGE";
  value?: JudgedValue;
  valueReasoning: string;
  confidence: number;
  segment?: SegmentRef;
  fromSegment?: SegmentRef;
  toSegment?: SegmentRef;
}

/**
 * The judge's answer, as the model writes it: evidence before verdict. Models write an answer
 * in the order of its schema, so the segments and the reasoning come before the value they
 * decide. The same schema, with its limits folded into descriptions, is the structured-output
 * format of the request (prompt.ts); one schema for every metric keeps the prompt cache's key
 * the same across a call's metrics, so the value's type is checked here, per definition.
 */
export const judgmentAnswerSchema = z.object({
  segmentIds: z
    .array(z.string())
    .max(200)
    .describe("Ids (like s3) of the transcript segments the judgment rests on, in order; empty if none"),
  reasoning: z
    .string()
    .trim()
    .min(1)
    .max(4000)
    .describe("One or two sentences citing what in the transcript decides the answer"),
  applicable: z.boolean().describe("false when the question does not apply to this call at all (then value is null)"),
  value: z
    .union([z.boolean(), z.number(), z.string(), z.array(z.string()), z.null()])
    .describe(
      "The answer, of exactly the type the metric asks for: true/false, a number, a list of labels, a text or a segment id",
    ),
  confidence: z.number().min(0).max(1).describe("How sure you are, from 0 to 1"),
});

export type JudgmentResult = { ok: true; judgment: Judgment } | { ok: false; problem: string };

const describe = (error: z.ZodError, prefix: string) =>
  error.issues.map((i) => `${[prefix, ...i.path.map(String)].filter(Boolean).join(".")}: ${i.message}`).join("; ");

export function interpretJudgment(
  definition: MetricDefinition,
  call: Pick<Call, "transcript">,
  input: unknown,
): JudgmentResult {
  const parsed = judgmentAnswerSchema.safeParse(input);
  if (!parsed.success) return { ok: false, problem: describe(parsed.error, "") };
  const { applicable, reasoning, confidence } = parsed.data;

  const referenced = parsed.data.segmentIds;
  const refs: SegmentRef[] = [];
  for (const id of referenced) {
    const index = /^s(\d+)$/.exec(id)?.[1];
    const segment = index === undefined ? undefined : call.transcript[Number(index)];
    if (!segment) return { ok: false, problem: `segmentIds: ${id} is not a segment of this transcript` };
    refs.push(
      segmentExcerpt({
        id,
        text: segment.text,
        startOffsetMs: segment.startOffsetMs,
        endOffsetMs: segment.endOffsetMs,
      }),
    );
  }

  if (!applicable) {
    return {
      ok: true,
      judgment: { captureStatus: "NOT_APPLICABLE", context: "CALL", valueReasoning: reasoning, confidence },
    };
  }
  const value = valueSchemaOf(definition).safeParse(parsed.data.value);
  if (!value.success) return { ok: false, problem: describe(value.error, "value") };

  if (definition.outputType === "OFFSET") {
    const id = value.data as string;
    const segment = call.transcript[Number(id.slice(1))];
    if (!segment) return { ok: false, problem: `value: ${id} is not a segment of this transcript` };
    const ref = segmentExcerpt({
      id,
      text: segment.text,
      startOffsetMs: segment.startOffsetMs,
      endOffsetMs: segment.endOffsetMs,
    });
    // The value of an OFFSET metric is where in the call it points, in ms.
    return {
      ok: true,
      judgment: {
        captureStatus: "SUCCESS",
        context: "SEGMENT",
        value: segment.startOffsetMs,
        valueReasoning: reasoning,
        confidence,
        segment: ref,
      },
    };
  }

  const ordered = refs.sort((a, b) => a.startOffsetMs - b.startOffsetMs);
  const first = ordered[0];
  const last = ordered.at(-1);
  const base = { captureStatus: "SUCCESS" as const, value: value.data, valueReasoning: reasoning, confidence };
  if (!first || !last) return { ok: true, judgment: { ...base, context: "CALL" } };
  if (first === last) return { ok: true, judgment: { ...base, context: "SEGMENT", segment: first } };
  return { ok: true, judgment: { ...base, context: "SEGMENT_RANGE", fromSegment: first, toSegment: last } };
}
