/**
 * The fake Anthropic server's judgments: deterministic answers from simple transcript rules.
 *
 * From the metric's question: the first "quoted phrase" is the keyword;
 * `only if the transcript mentions "X"` makes the metric NOT_APPLICABLE when X is absent.
 * BOOLEAN = some segment, or the context the definition asked for (tool invocations, call
 * properties), mentions the keyword; COUNT = segments mentioning it; NUMERIC =
 * occurrences of it; SCALE = min + mentioning segments, capped at max; CLASSIFICATION =
 * options that appear in the transcript (else the first); TEXT = the first mentioning
 * segment; OFFSET = the first mentioning segment (NOT_APPLICABLE when none).
 */

interface Segment {
  id: string;
  text: string;
}

function parseTranscript(text: string): Segment[] {
  return [...text.matchAll(/^\[(s\d+)\] \S+ (?:AGENT|CUSTOMER): (.*)$/gm)].map((m) => ({
    id: m[1] ?? "",
    text: m[2] ?? "",
  }));
}

const occurrences = (haystack: string, needle: string) => haystack.toLowerCase().split(needle.toLowerCase()).length - 1;

/** The deterministic judgment described at the top of this file. */
export function fakeJudgment(transcriptText: string, metricText: string, contextText = ""): Record<string, unknown> {
  const segments = parseTranscript(transcriptText);
  const whole = segments.map((s) => s.text).join("\n");
  const question = /^Question: (.*)$/m.exec(metricText)?.[1] ?? "";
  const type = /^Answer type: (\w+)/m.exec(metricText)?.[1] ?? "TEXT";
  const onlyIf = /only if the transcript mentions "([^"]+)"/i.exec(question)?.[1];
  const keyword = [...question.matchAll(/"([^"]+)"/g)].map((m) => m[1] ?? "").find((q) => q !== onlyIf);
  if (onlyIf && occurrences(whole, onlyIf) === 0) {
    return notApplicable(`The transcript never mentions "${onlyIf}".`);
  }
  const mentioning = keyword ? segments.filter((s) => occurrences(s.text, keyword) > 0) : [];
  const ids = mentioning.map((s) => s.id);
  const reasoning = keyword
    ? `${mentioning.length} segment(s) mention "${keyword}".`
    : "No keyword in the question; judged on the transcript as a whole.";
  const answer = (value: unknown, segmentIds = ids) => ({
    applicable: true,
    value,
    reasoning,
    confidence: mentioning.length > 0 ? 0.9 : 0.6,
    segmentIds,
  });
  switch (type) {
    case "BOOLEAN":
      return answer(mentioning.length > 0 || (keyword !== undefined && occurrences(contextText, keyword) > 0));
    case "COUNT":
      return answer(mentioning.length);
    case "NUMERIC":
      return answer(keyword ? occurrences(whole, keyword) : segments.length);
    case "SCALE": {
      const [, min = "1", max = "5"] = /from (-?\d+) to (-?\d+)/.exec(metricText) ?? [];
      return answer(Math.min(Number(max), Number(min) + mentioning.length));
    }
    case "CLASSIFICATION": {
      const max = Number(/list of 1 to (\d+) labels/.exec(metricText)?.[1] ?? 1);
      const options = (/each exactly one of: (.*)\.$/m.exec(metricText)?.[1] ?? "").split(" | ").filter(Boolean);
      const present = options.filter((o) => occurrences(whole, o) > 0);
      return answer((present.length > 0 ? present : options.slice(0, 1)).slice(0, max), []);
    }
    case "OFFSET": {
      const first = mentioning[0];
      if (!first) return notApplicable(`No segment mentions "${keyword ?? ""}".`);
      return answer(first.id, [first.id]);
    }
    default: {
      const first = mentioning[0];
      return answer(first ? first.text.slice(0, 1000) : `No mention of "${keyword ?? "anything"}".`);
    }
  }
}

const notApplicable = (reasoning: string) => ({ applicable: false, value: null, reasoning, confidence: 0.8 });

/** A wrong-typed answer for every output type: a string where a number or boolean is due, a number otherwise. */
export function malformed(type: string): Record<string, unknown> {
  const value = type === "TEXT" || type === "CLASSIFICATION" || type === "OFFSET" ? 42 : "definitely";
  return { applicable: true, value, reasoning: "malformed on purpose", confidence: 0.5 };
}
