/**
 * A fake Anthropic Messages API on 127.0.0.1 for tests, the benchmark and `npm start`
 * without a key. It answers a structured-output request (`output_config.format`, checked as
 * the real API checks it: fake-output-format.ts) with a JSON judgment from simple transcript
 * rules (fake-judgments.ts), reports realistic usage (cache creation on the first sight of a
 * prefix, cache reads after; the format is part of the cache key), and injects latency and
 * faults by option or per-request header (`x-fake-fault`, `x-fake-latency-ms`). Like the real
 * API, Sonnet/Opus 5.5 answer with a thinking block first and refuse a forced tool choice.
 */
import { createHash, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { sleep } from "../../shared/concurrency.ts";
import { createFakeBatches } from "./fake-batches.ts";
import { fakeJudgment, malformed } from "./fake-judgments.ts";
import { outputFormatProblem, shapedAnswer } from "./fake-output-format.ts";
import {
  type Admission,
  createRateLimiter,
  type OverloadBursts,
  overloadedFor,
  type RateLimits,
} from "./fake-rate-limits.ts";

export const FAULTS = [
  "rate_limit",
  "overloaded",
  "server_error",
  "malformed",
  "malformed_always",
  "refusal",
  "unauthorized",
  "credit",
] as const;
export type Fault = (typeof FAULTS)[number];

export interface FakeRequest {
  /** 1-based index of the request since start (or reset). */
  index: number;
  /** When the server received it (epoch ms). */
  receivedAt: number;
  model: string;
  /** Hash of the cacheable prefix (tools, output format, system, transcript). */
  prefixHash: string;
  /** Hash of the whole first user turn: one call × one metric. */
  itemHash: string;
  /** How many times this item was asked, this request included (corrections excluded). */
  attempt: number;
  /** A corrective retry after an invalid answer. */
  isCorrection: boolean;
  /** Questions asked: more than one in a grouped request ([q1], [q2], …). */
  questions: number;
  /** `output_config.effort`, when the request sets it. */
  effort?: string;
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
  /** How long a message batch takes to end after it is created (0: at the next look). */
  batchProcessingMs?: number;
  /** Batches reach their 24-hour expiry unprocessed: every request ends `expired`. */
  batchesExpire?: boolean;
  /**
   * Share (0–1) of a batch's requests that read a cached prefix when one is there: the API's
   * cache hits inside a batch are best effort. Which requests hit follows from their content,
   * so a run repeats. Default 1.
   */
  batchCacheHitRate?: number;
  /** The Messages API's per-model limits (fake-rate-limits.ts); none by default. */
  rateLimits?: RateLimits;
  /** Periods in which every Messages request is answered 529 overloaded. */
  overloadBursts?: OverloadBursts;
}

export interface RecordedRequest extends FakeRequest {
  status: number;
  /** The message batch the request came in, if any. */
  batchId?: string;
  fault?: Fault;
  usage?: Usage;
}

interface Usage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  output_tokens_details?: { thinking_tokens: number };
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
  output_config?: { format?: unknown; effort?: unknown };
  messages?: { role: string; content: string | ContentBlock[] }[];
}
/** A body that passed the API's checks. */
type ValidBody = MessagesBody & { model: string };

/** Models that think by default and reject forced tool choice (Sonnet 5.5, Opus 5.5). */
const FORCED_TOOL_CHOICE_REFUSED = /^claude-[a-z]+-5-5/;

/** Thinking tokens per answer by `output_config.effort` (the API's default is high). */
const THINKING_TOKENS: Record<string, number> = { low: 12, medium: 48, high: 120 };

const DEFAULTS = {
  latencyMs: 0,
  minCacheableTokens: 1024,
  cacheTtlMs: 5 * 60_000,
  retryAfterSeconds: 1,
  batchProcessingMs: 0,
};

/** About four characters per token, like English text in Claude's tokenizer. */
export const estimateTokens = (text: string) => Math.ceil(text.length / 4);
const hash = (text: string) => createHash("sha256").update(text).digest("hex").slice(0, 16);
/** A hash as a number in [0, 1), for choices that must repeat from run to run. */
const hashFraction = (hex: string) => Number.parseInt(hex.slice(0, 8), 16) / 2 ** 32;
const blocks = (content: string | ContentBlock[]): ContentBlock[] =>
  typeof content === "string" ? [{ type: "text", text: content }] : content;

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

const fallbackError = { type: "api_error", message: "Internal server error" };

const unauthorized: FakeResponse = {
  status: 401,
  error: { type: "authentication_error", message: "invalid x-api-key" },
};

const invalidRequest = (message: string): FakeResponse => ({
  status: 400,
  error: { type: "invalid_request_error", message },
});

/** An error answer: its HTTP status and the API's error object. */
export interface FakeResponse {
  status: number;
  error: { type: string; message: string };
}

type ParsedRequest = { body: ValidBody; firstTurn: ContentBlock[] } | FakeResponse;

/** The request body as sent, or the error the API answers a body that is not JSON with. */
async function readJsonBody(req: IncomingMessage): Promise<{ body: unknown } | FakeResponse> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString("utf8");
  // A POST without a body (cancel) is fine; a body must be JSON.
  if (text === "") return { body: undefined };
  try {
    return { body: JSON.parse(text) as unknown };
  } catch {
    return invalidRequest("Invalid JSON");
  }
}

/** The request's API key, or undefined when it sends none. */
function apiKeyOf(req: IncomingMessage): string | undefined {
  // The SDK sends `Authorization: Bearer <key>`; older clients and curl use `x-api-key`.
  const bearer = /^Bearer (\S+)/.exec(req.headers.authorization ?? "")?.[1];
  const key = req.headers["x-api-key"];
  return typeof key === "string" && key !== "" ? key : bearer;
}

/** The fault a request asks for in its `x-fake-fault` header. */
function headerFault(req: IncomingMessage): Fault | undefined {
  const fault = String(req.headers["x-fake-fault"]);
  return (FAULTS as readonly string[]).includes(fault) ? (fault as Fault) : undefined;
}

/** A Messages request body as the real API validates it, or the error it answers with. */
function validateMessagesBody(raw: unknown): ParsedRequest {
  const body = (raw ?? {}) as MessagesBody;
  const firstTurn = body.messages?.[0] ? blocks(body.messages[0].content) : undefined;
  if (typeof body.model !== "string" || typeof body.max_tokens !== "number" || !firstTurn) {
    return invalidRequest("model, max_tokens and messages are required");
  }
  // Like the real API: current models refuse a forced tool choice.
  if (FORCED_TOOL_CHOICE_REFUSED.test(body.model) && ["tool", "any"].includes(body.tool_choice?.type ?? "")) {
    return invalidRequest(`Forced tool use is not supported with ${body.model}.`);
  }
  const formatProblem =
    body.output_config?.format === undefined ? undefined : outputFormatProblem(body.output_config.format);
  if (formatProblem) return invalidRequest(formatProblem);
  return { body: { ...body, model: body.model }, firstTurn };
}

interface PromptParts {
  /** Index of the last block marked with cache_control (-1: none). */
  breakpoint: number;
  /** Tools, output format, system and the first turn through the last breakpoint. */
  prefixText: string;
  /** The prefix through each breakpoint, shortest first: what the prompt cache keeps. */
  prefixes: string[];
  restText: string;
}

function promptParts(body: MessagesBody, firstTurn: ContentBlock[]): PromptParts {
  const head =
    JSON.stringify(body.tools ?? []) +
    JSON.stringify(body.output_config?.format ?? null) +
    JSON.stringify(body.system ?? "");
  const through = (index: number) =>
    head +
    firstTurn
      .slice(0, index + 1)
      .map((b) => b.text ?? "")
      .join("");
  const breakpoints = firstTurn.flatMap((block, index) => (block.cache_control ? [index] : []));
  const breakpoint = breakpoints.at(-1) ?? -1;
  const restText = [
    ...firstTurn.slice(breakpoint + 1).map((b) => b.text ?? ""),
    ...(body.messages ?? []).slice(1).map((m) => JSON.stringify(m.content)),
  ].join("");
  return { breakpoint, prefixText: through(breakpoint), prefixes: breakpoints.map(through), restText };
}

/** The questions of a grouped request by key ([q1] …), or none for a single question. */
function groupedQuestions(metricText: string): { key: string; text: string }[] {
  if (!metricText.startsWith("[q1]\n")) return [];
  return metricText.split(/\n\n(?=\[q\d+\]\n)/).map((part) => {
    const [, key = "", text = ""] = /^\[(q\d+)\]\n([\s\S]*)$/.exec(part) ?? [];
    return { key, text };
  });
}

/**
 * The judgment the request's transcript and question call for (one per question of a
 * grouped request), or a wrong-typed one when the fault says so: in a grouped request, only
 * the first question's.
 */
function judgmentFor(firstTurn: ContentBlock[], fault: Fault | undefined, isCorrection: boolean) {
  const transcriptText = firstTurn.find((b) => b.text?.startsWith("<transcript>"))?.text ?? "";
  const contextText = firstTurn.find((b) => /^<(tool_invocations|call_properties)>/.test(b.text ?? ""))?.text ?? "";
  const metricText = firstTurn.at(-1)?.text ?? "";
  const badAnswer = fault === "malformed_always" || (fault === "malformed" && !isCorrection);
  const judge = (text: string, bad: boolean) => {
    const type = /^Answer type: (\w+)/m.exec(text)?.[1] ?? "TEXT";
    return bad ? malformed(type) : fakeJudgment(transcriptText, text, contextText);
  };
  const questions = groupedQuestions(metricText);
  if (questions.length === 0) return judge(metricText, badAnswer);
  return Object.fromEntries(questions.map(({ key, text }, i) => [key, judge(text, badAnswer && i === 0)]));
}

/**
 * The assistant message: a thinking block first on models that think, then the answer: the
 * judgment as JSON text shaped by the requested format, prose without one, nothing on a refusal.
 */
function answerMessage(body: ValidBody, usage: Usage, judgment: Record<string, unknown>, refuses: boolean) {
  const thinks = FORCED_TOOL_CHOICE_REFUSED.test(body.model);
  if (thinks) {
    const effort = String(body.output_config?.effort ?? "high");
    const thinking = THINKING_TOKENS[effort] ?? THINKING_TOKENS.high ?? 0;
    usage.output_tokens += thinking;
    usage.output_tokens_details = { thinking_tokens: thinking };
  }
  const format = body.output_config?.format;
  const text =
    format === undefined ? "The agent handled the call well." : JSON.stringify(shapedAnswer(judgment, format));
  return {
    id: `msg_${randomUUID().replaceAll("-", "")}`,
    type: "message",
    role: "assistant",
    model: body.model,
    content: [
      ...(thinks
        ? [{ type: "thinking", thinking: "Checking the transcript for the question.", signature: "fake-sig" }]
        : []),
      ...(refuses ? [] : [{ type: "text", text }]),
    ],
    stop_reason: refuses ? "refusal" : "end_turn",
    stop_sequence: null,
    usage,
  };
}

export async function startFakeAnthropic(initial: FakeAnthropicOptions = {}) {
  let options = { ...DEFAULTS, ...initial };
  let log: RecordedRequest[] = [];
  const attempts = new Map<string, number>();
  const cache = new Map<string, number>();

  function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
    res.writeHead(status, { "content-type": "application/json", "request-id": `req_${randomUUID()}`, ...headers });
    res.end(typeof body === "string" ? body : JSON.stringify(body));
  }

  /** How the server answers one Messages request body, sent directly or inside a batch. */
  interface Answer {
    status: number;
    body: unknown;
    headers?: Record<string, string>;
  }

  /**
   * Answers one Messages request and logs it. `fault` comes from the caller (a rejected key,
   * the `x-fake-fault` header); otherwise the configured rule picks one.
   */
  function answerMessages(raw: unknown, fault: Fault | undefined, batchId?: string): Answer {
    const parsed = validateMessagesBody(raw);
    if ("error" in parsed) return { status: parsed.status, body: { type: "error", error: parsed.error } };
    const { body, firstTurn } = parsed;
    const prompt = promptParts(body, firstTurn);
    const request = describe(body, firstTurn, prompt);
    // Batches have limits of their own; the Messages limits and overloads apply to direct requests.
    const { refused, admission } = batchId === undefined ? admit(request, body, prompt) : {};
    if (refused) return refused;
    const chosenFault = fault ?? options.fault?.(request);
    const recorded: RecordedRequest = { ...request, status: 200, fault: chosenFault, ...(batchId ? { batchId } : {}) };
    log.push(recorded);
    const error = chosenFault ? errorBodies[chosenFault] : undefined;
    if (error) {
      recorded.status = error.status;
      const retryAfter: Record<string, string> =
        error.status === 429 || error.status === 529 ? { "retry-after": String(options.retryAfterSeconds) } : {};
      return { status: error.status, body: errorBody(chosenFault as string), headers: retryAfter };
    }
    const judgment = judgmentFor(firstTurn, chosenFault, request.isCorrection);
    const readsCache = batchId === undefined || hashFraction(request.itemHash) < (options.batchCacheHitRate ?? 1);
    recorded.usage = usageFor(prompt, JSON.stringify(judgment), readsCache);
    const refuses = chosenFault === "refusal" && !request.isCorrection;
    const message = answerMessage(body, recorded.usage, judgment, refuses);
    admission?.finish(recorded.usage.output_tokens);
    return { status: 200, body: message, headers: admission?.headers };
  }

  const startedAt = Date.now();
  const limiter = createRateLimiter(() => options.rateLimits);

  /** A 529 in an overload burst, a 429 when the request does not fit the limits, else its admission. */
  function admit(
    request: FakeRequest,
    body: ValidBody,
    prompt: PromptParts,
  ): { refused?: Answer; admission?: Admission } {
    const overloadMs = overloadedFor(options.overloadBursts, startedAt, Date.now());
    const refuse = (fault: Fault, headers: Record<string, string>): Answer => {
      log.push({ ...request, status: errorBodies[fault]?.status ?? 500, fault });
      return { status: errorBodies[fault]?.status ?? 500, body: errorBody(fault), headers };
    };
    if (overloadMs > 0)
      return { refused: refuse("overloaded", { "retry-after": String(Math.ceil(overloadMs / 1000)) }) };
    // What counts toward input tokens per minute: uncached input and cache writes, not cache reads.
    const expected = usageFor(prompt, "", true, false);
    const uncached = expected.input_tokens + expected.cache_creation_input_tokens;
    const admission = limiter.admit(body.model, uncached, Number(body.max_tokens));
    return admission.admitted ? { admission } : { refused: refuse("rate_limit", admission.headers) };
  }

  const batches = createFakeBatches({
    url: () => url,
    processingMs: () => options.batchProcessingMs,
    expires: () => options.batchesExpire === true,
    answer: (params, batchId) => answerMessages(params, undefined, batchId),
  });

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const path = new URL(req.url ?? "/", "http://fake").pathname;
    const apiKey = apiKeyOf(req);
    if (!apiKey) return sendError(res, unauthorized);
    const keyRejected = options.acceptedApiKeys !== undefined && !options.acceptedApiKeys.includes(apiKey);
    if (path.startsWith("/v1/messages/batches")) return handleBatches(req, res, path, keyRejected);
    if (req.method !== "POST" || path !== "/v1/messages") {
      return sendError(res, { status: 404, error: { type: "not_found_error", message: "Not found" } });
    }
    const read = await readJsonBody(req);
    if ("error" in read) return sendError(res, read);
    const latency = Number(req.headers["x-fake-latency-ms"] ?? options.latencyMs);
    const answer = answerMessages(read.body, keyRejected ? "unauthorized" : headerFault(req));
    if (latency > 0) await sleep(latency);
    send(res, answer.status, answer.body, answer.headers);
  }

  async function handleBatches(req: IncomingMessage, res: ServerResponse, path: string, keyRejected: boolean) {
    if (keyRejected) return sendError(res, unauthorized);
    const read = req.method === "POST" ? await readJsonBody(req) : { body: undefined };
    const answer = "error" in read ? read : batches.handle(req.method ?? "GET", path, read.body, req.url ?? "");
    return "error" in answer ? sendError(res, answer) : send(res, answer.status, answer.body, answer.headers);
  }

  const sendError = (res: ServerResponse, { status, error }: FakeResponse) =>
    send(res, status, { type: "error", error });

  /** What the log records of a request; counts the item's attempts. */
  function describe(body: ValidBody, firstTurn: ContentBlock[], prompt: PromptParts): FakeRequest {
    const isCorrection = (body.messages?.length ?? 0) > 1;
    const itemHash = hash(JSON.stringify(firstTurn));
    const attempt = isCorrection ? (attempts.get(itemHash) ?? 1) : (attempts.get(itemHash) ?? 0) + 1;
    if (!isCorrection) attempts.set(itemHash, attempt);
    const effort = body.output_config?.effort;
    return {
      index: log.length + 1,
      receivedAt: Date.now(),
      model: body.model,
      prefixHash: prompt.breakpoint >= 0 ? hash(prompt.prefixText) : "",
      itemHash,
      attempt,
      isCorrection,
      questions: Math.max(1, groupedQuestions(firstTurn.at(-1)?.text ?? "").length),
      ...(typeof effort === "string" ? { effort } : {}),
    };
  }

  /**
   * Tools and system always count. Each breakpoint's prefix is cacheable once long enough;
   * the longest prefix cached (within its TTL) is read, the rest up to the last breakpoint
   * written, as the API bills several breakpoints.
   */
  function usageFor(prompt: PromptParts, answer: string, readsCache: boolean, writesCache = true): Usage {
    const cacheable = prompt.prefixes.filter((prefix) => estimateTokens(prefix) >= options.minCacheableTokens);
    const now = Date.now();
    const hit = readsCache ? cacheable.findLast((prefix) => (cache.get(hash(prefix)) ?? 0) > now) : undefined;
    if (writesCache) for (const prefix of cacheable) cache.set(hash(prefix), now + options.cacheTtlMs);
    const readTokens = hit ? estimateTokens(hit) : 0;
    const cachedThrough = cacheable.at(-1);
    const cachedTokens = cachedThrough ? estimateTokens(cachedThrough) : 0;
    return {
      input_tokens: estimateTokens(prompt.restText) + estimateTokens(prompt.prefixText) - cachedTokens,
      output_tokens: 20 + estimateTokens(answer),
      cache_creation_input_tokens: cachedTokens - readTokens,
      cache_read_input_tokens: readTokens,
    };
  }

  function errorBody(fault: string) {
    const error = errorBodies[fault] ?? fallbackError;
    return { type: "error", error: { type: error.type, message: error.message } };
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) send(res, 500, { type: "error", error: { type: "api_error", message: String(error) } });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;

  return {
    url,
    /** Changes options from now on (e.g. a different fault rule per test). */
    configure(update: Partial<FakeAnthropicOptions>) {
      options = { ...options, ...update };
    },
    /** Every request so far, in order. */
    requests: (): readonly RecordedRequest[] => log,
    /** Message batches created so far, newest first, as the API lists them. */
    batches: batches.list,
    /** Forgets requests, attempts, the prompt cache and batches. */
    reset() {
      log = [];
      attempts.clear();
      cache.clear();
      batches.clear();
      limiter.reset();
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export type FakeAnthropic = Awaited<ReturnType<typeof startFakeAnthropic>>;
