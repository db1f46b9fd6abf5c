/**
 * A fake Anthropic Messages API on 127.0.0.1 for tests, the benchmark and `npm start`
 * without a key. It answers the judge's forced tool call with deterministic judgments from
 * simple transcript rules, reports realistic usage (cache creation on the first sight of a
 * prefix, cache reads after), and injects latency and faults by option or per-request
 * header (`x-fake-fault`, `x-fake-latency-ms`). Like the real API, Sonnet/Opus 5.5 answer with a
 * thinking block first and refuse a forced tool choice.
 *
 * Judgment rules, from the metric's question: the first "quoted phrase" is the keyword;
 * `only if the transcript mentions "X"` makes the metric NOT_APPLICABLE when X is absent.
 * BOOLEAN = some segment mentions the keyword; COUNT = segments mentioning it; NUMERIC =
 * occurrences of it; SCALE = min + mentioning segments, capped at max; CLASSIFICATION =
 * options that appear in the transcript (else the first); TEXT = the first mentioning
 * segment; OFFSET = the first mentioning segment (NOT_APPLICABLE when none).
 */
import { createHash, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { sleep } from "../../shared/concurrency.ts";

export const FAULTS = [
  "rate_limit",
  "overloaded",
  "server_error",
  "malformed",
  "malformed_always",
  "prose",
  "unauthorized",
  "credit",
] as const;
export type Fault = (typeof FAULTS)[number];

export interface FakeRequest {
  /** 1-based index of the request since start (or reset). */
  index: number;
  model: string;
  /** Hash of the cacheable prefix (tools, system, transcript). */
  prefixHash: string;
  /** Hash of the whole first user turn: one call × one metric. */
  itemHash: string;
  /** How many times this item was asked, this request included (corrections excluded). */
  attempt: number;
  /** A corrective retry after an invalid answer. */
  isCorrection: boolean;
}

export interface FakeAnthropicOptions {
  /** Added to every response. */
  latencyMs?: number;
  /** Prefixes shorter than this are not cached, as with the real API (1024 for Sonnet). */
  minCacheableTokens?: number;
  cacheTtlMs?: number;
  /** Seconds sent in `retry-after` with 429 and 529. */
  retryAfterSeconds?: number;
  /** Picks a fault per request; tests swap it with `configure`. */
  fault?: (request: FakeRequest) => Fault | undefined;
  /** When set, any other API key is rejected with a 401 (a rotated-out key). */
  acceptedApiKeys?: string[];
}

export interface RecordedRequest extends FakeRequest {
  status: number;
  fault?: Fault;
  usage?: Usage;
}

interface Usage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
}

interface ContentBlock {
  type: string;
  text?: string;
  cache_control?: unknown;
  is_error?: boolean;
  [key: string]: unknown;
}
interface MessagesBody {
  model?: unknown;
  tool_choice?: { type?: string };
  max_tokens?: unknown;
  system?: unknown;
  tools?: unknown;
  messages?: { role: string; content: string | ContentBlock[] }[];
}

/** Models that think by default and reject forced tool choice (Sonnet 5.5, Opus 5.5). */
const FORCED_TOOL_CHOICE_REFUSED = /^claude-[a-z]+-5-5/;

const DEFAULTS = { latencyMs: 0, minCacheableTokens: 1024, cacheTtlMs: 5 * 60_000, retryAfterSeconds: 1 };

/** About four characters per token, like English text in Claude's tokenizer. */
export const estimateTokens = (text: string) => Math.ceil(text.length / 4);
const hash = (text: string) => createHash("sha256").update(text).digest("hex").slice(0, 16);
const blocks = (content: string | ContentBlock[]): ContentBlock[] =>
  typeof content === "string" ? [{ type: "text", text: content }] : content;

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
export function fakeJudgment(transcriptText: string, metricText: string): Record<string, unknown> {
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
      return answer(mentioning.length > 0);
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
function malformed(type: string): Record<string, unknown> {
  const value = type === "TEXT" || type === "CLASSIFICATION" || type === "OFFSET" ? 42 : "definitely";
  return { applicable: true, value, reasoning: "malformed on purpose", confidence: 0.5 };
}

const errorBodies: Record<string, { status: number; type: string; message: string }> = {
  rate_limit: {
    status: 429,
    type: "rate_limit_error",
    message: "Number of request tokens has exceeded your per-minute rate limit",
  },
  overloaded: { status: 529, type: "overloaded_error", message: "Overloaded" },
  server_error: { status: 500, type: "api_error", message: "Internal server error" },
  unauthorized: { status: 401, type: "authentication_error", message: "invalid x-api-key" },
  credit: {
    status: 400,
    type: "invalid_request_error",
    message:
      "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
  },
};

export async function startFakeAnthropic(initial: FakeAnthropicOptions = {}) {
  let options = { ...DEFAULTS, ...initial };
  let log: RecordedRequest[] = [];
  const attempts = new Map<string, number>();
  const cache = new Map<string, number>();

  function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
    res.writeHead(status, { "content-type": "application/json", "request-id": `req_${randomUUID()}`, ...headers });
    res.end(JSON.stringify(body));
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    if (req.method !== "POST" || !req.url?.startsWith("/v1/messages")) {
      return send(res, 404, { type: "error", error: { type: "not_found_error", message: "Not found" } });
    }
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    let body: MessagesBody;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as MessagesBody;
    } catch {
      return send(res, 400, { type: "error", error: { type: "invalid_request_error", message: "Invalid JSON" } });
    }
    // The SDK sends `Authorization: Bearer <key>`; older clients and curl use `x-api-key`.
    if (!req.headers["x-api-key"] && !/^Bearer \S+/.test(req.headers.authorization ?? "")) {
      return send(res, 401, errorBody("unauthorized"));
    }
    const messages = body.messages;
    const firstTurn = messages?.[0] ? blocks(messages[0].content) : undefined;
    if (typeof body.model !== "string" || typeof body.max_tokens !== "number" || !firstTurn) {
      return send(res, 400, {
        type: "error",
        error: { type: "invalid_request_error", message: "model, max_tokens and messages are required" },
      });
    }

    // Like the real API: current models refuse a forced tool choice.
    if (FORCED_TOOL_CHOICE_REFUSED.test(body.model) && ["tool", "any"].includes(body.tool_choice?.type ?? "")) {
      return send(res, 400, {
        type: "error",
        error: { type: "invalid_request_error", message: `Forced tool use is not supported with ${body.model}.` },
      });
    }

    // The cacheable prefix runs through the last block marked with cache_control.
    const breakpoint = firstTurn.findLastIndex((b) => b.cache_control);
    const prefixText =
      JSON.stringify(body.tools ?? []) +
      JSON.stringify(body.system ?? "") +
      firstTurn
        .slice(0, breakpoint + 1)
        .map((b) => b.text ?? "")
        .join("");
    const restText = [
      ...firstTurn.slice(breakpoint + 1).map((b) => b.text ?? ""),
      ...(messages ?? []).slice(1).map((m) => JSON.stringify(m.content)),
    ].join("");
    const isCorrection = (messages?.length ?? 0) > 1;
    const itemHash = hash(JSON.stringify(firstTurn));
    const attempt = isCorrection ? (attempts.get(itemHash) ?? 1) : (attempts.get(itemHash) ?? 0) + 1;
    if (!isCorrection) attempts.set(itemHash, attempt);
    const request: FakeRequest = {
      index: log.length + 1,
      model: body.model,
      prefixHash: breakpoint >= 0 ? hash(prefixText) : "",
      itemHash,
      attempt,
      isCorrection,
    };
    const headerFault = req.headers["x-fake-fault"];
    const apiKey = String(req.headers["x-api-key"] ?? req.headers.authorization?.replace(/^Bearer /, ""));
    const keyRejected = options.acceptedApiKeys !== undefined && !options.acceptedApiKeys.includes(apiKey);
    const fault = keyRejected
      ? "unauthorized"
      : (FAULTS as readonly string[]).includes(String(headerFault))
        ? (headerFault as Fault)
        : options.fault?.(request);
    const recorded: RecordedRequest = { ...request, status: 200, fault };
    log.push(recorded);

    const latency = Number(req.headers["x-fake-latency-ms"] ?? options.latencyMs);
    if (latency > 0) await sleep(latency);

    const error = fault ? errorBodies[fault] : undefined;
    if (error) {
      recorded.status = error.status;
      const retryAfter: Record<string, string> =
        error.status === 429 || error.status === 529 ? { "retry-after": String(options.retryAfterSeconds) } : {};
      return send(res, error.status, errorBody(fault as string), retryAfter);
    }

    const transcriptText = firstTurn.find((b) => b.text?.startsWith("<transcript>"))?.text ?? "";
    const metricText = firstTurn.at(-1)?.text ?? "";
    const type = /^Answer type: (\w+)/m.exec(metricText)?.[1] ?? "TEXT";
    const badAnswer = fault === "malformed_always" || (fault === "malformed" && !isCorrection);
    const input = badAnswer ? malformed(type) : fakeJudgment(transcriptText, metricText);

    // Tools and system always count; they are cacheable only up to a breakpoint.
    const prefixTokens = estimateTokens(prefixText);
    const cacheable = breakpoint >= 0 && prefixTokens >= options.minCacheableTokens;
    const now = Date.now();
    const cached = cacheable && (cache.get(request.prefixHash) ?? 0) > now;
    if (cacheable) cache.set(request.prefixHash, now + options.cacheTtlMs);
    const usage: Usage = {
      input_tokens: estimateTokens(restText) + (cacheable ? 0 : prefixTokens),
      output_tokens: 20 + estimateTokens(JSON.stringify(input)),
      cache_creation_input_tokens: cacheable && !cached ? prefixTokens : 0,
      cache_read_input_tokens: cached ? prefixTokens : 0,
    };
    recorded.usage = usage;
    const toolName = (body.tools as { name?: string }[] | undefined)?.[0]?.name ?? "record_judgment";
    const thinks = FORCED_TOOL_CHOICE_REFUSED.test(body.model);
    const content: unknown[] = [
      ...(thinks
        ? [{ type: "thinking", thinking: "Checking the transcript for the question.", signature: "fake-sig" }]
        : []),
      fault === "prose" && !isCorrection
        ? { type: "text", text: "The agent handled the call well." }
        : { type: "tool_use", id: `toolu_${randomUUID().replaceAll("-", "")}`, name: toolName, input },
    ];
    if (thinks) usage.output_tokens += 12;
    send(res, 200, {
      id: `msg_${randomUUID().replaceAll("-", "")}`,
      type: "message",
      role: "assistant",
      model: body.model,
      content,
      stop_reason: fault === "prose" && !isCorrection ? "end_turn" : "tool_use",
      stop_sequence: null,
      usage,
    });
  }

  function errorBody(fault: string) {
    const error = errorBodies[fault] ?? errorBodies.server_error;
    return { type: "error", error: { type: error?.type, message: error?.message } };
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) send(res, 500, { type: "error", error: { type: "api_error", message: String(error) } });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    /** Changes options from now on (e.g. a different fault rule per test). */
    configure(update: Partial<FakeAnthropicOptions>) {
      options = { ...options, ...update };
    },
    /** Every request so far, in order. */
    requests: (): readonly RecordedRequest[] => log,
    /** Forgets requests, attempts and the prompt cache. */
    reset() {
      log = [];
      attempts.clear();
      cache.clear();
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export type FakeAnthropic = Awaited<ReturnType<typeof startFakeAnthropic>>;
