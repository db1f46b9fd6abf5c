/**
 * The LLM judge: one structured-output request per item, its answer validated; one
 * corrective retry when the answer is invalid (constrained decoding fixes the answer's shape,
 * not a refusal, a cut-off answer or a value of the wrong type or range for the metric). Rate limits and outages become retryable errors for the queue to
 * delay (no sleeping here); a rejected key or an empty credit balance stops the job's LLM
 * calls instead of burning retries, though a rejected key is read again and tried once
 * first (it may have been rotated).
 */
import Anthropic from "@anthropic-ai/sdk";
import { logger } from "../logger.ts";
import {
  billedUsageOf,
  LlmCallsBlockedError,
  RetryableEvaluationError,
  withBilledUsage,
} from "../pipeline/evaluation-errors.ts";
import type { EvaluationOutcome } from "../pipeline/evaluators.ts";
import type { Call } from "../schemas/call.ts";
import type { LlmMode, TokenUsage } from "../schemas/job.ts";
import type { MetricDefinition } from "../schemas/metric.ts";
import type { BilledUsage } from "../store/jobs.ts";
import { MissingApiKeyError } from "./client.ts";
import { interpretJudgment, type JudgmentResult } from "./judgment.ts";
import { addUsage, emptyUsage, estimateCostUsd } from "./pricing.ts";
import { buildGroupedJudgeRequest, buildJudgeRequest, questionKey } from "./prompt.ts";
import type { UsageReport } from "./rate-limiter.ts";

type MessagesClient = Pick<Anthropic, "messages">;

/** What the judge tells the shared limiter about each answer (rate-limiter.ts). */
export interface RateLimitObserver {
  answered(model: string, headers: Headers | undefined, usage: UsageReport): Promise<void>;
  rateLimited(model: string, headers: Headers | undefined, retryAfterSeconds: number | undefined): Promise<void>;
}

export interface JudgeDeps {
  client: () => Promise<MessagesClient>;
  /** Hears every answer's usage and rate-limit headers, and every 429. */
  rateLimits?: RateLimitObserver;
  /** A client with the key read again, after `rejected` got a 401. */
  refreshClient?: (rejected: MessagesClient) => Promise<MessagesClient>;
  defaultModel: string;
  maxTokens: number;
  effort?: "low" | "medium" | "high";
}

/** `retry-after-ms`, then `retry-after` in seconds or as an HTTP date. */
export function retryAfterSeconds(headers: Headers | undefined, now = Date.now()): number | undefined {
  const ms = Number(headers?.get("retry-after-ms"));
  if (Number.isFinite(ms) && ms > 0) return Math.ceil(ms / 1000);
  const value = headers?.get("retry-after");
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - now) / 1000));
}

function apiErrorMessage(error: InstanceType<typeof Anthropic.APIError>): string {
  const body = error.error as { error?: { message?: unknown } } | undefined;
  const message = body?.error?.message;
  return typeof message === "string" ? message : error.message;
}

/** Turns an SDK failure into what the pipeline does about it; returns a non-retryable message. */
function classifyFailure(error: unknown): string {
  if (error instanceof MissingApiKeyError) throw new LlmCallsBlockedError(error.message);
  if (!(error instanceof Anthropic.APIError)) throw error;
  const status = error.status;
  const message = apiErrorMessage(error);
  if (status === undefined) throw new RetryableEvaluationError(`Anthropic unreachable: ${message}`);
  if (status === 401 || status === 403) {
    throw new LlmCallsBlockedError(`Anthropic rejected the API key (${status}): ${message}`);
  }
  if (status === 402 || /credit balance/i.test(message)) {
    throw new LlmCallsBlockedError(`Anthropic account cannot be billed (${status}): ${message}`);
  }
  if (status === 408 || status === 409 || status === 429 || status >= 500) {
    throw new RetryableEvaluationError(`Anthropic ${status}: ${message}`, {
      retryAfterSeconds: retryAfterSeconds(error.headers),
      throttled: status === 429 || status === 529,
    });
  }
  return `Anthropic refused the request (${status}): ${message}`;
}

const isRejectedKey = (error: unknown) => error instanceof Anthropic.APIError && error.status === 401;

function usageOf(response: Anthropic.Message): TokenUsage {
  return {
    inputTokens: response.usage.input_tokens,
    outputTokens: response.usage.output_tokens,
    cacheCreationInputTokens: response.usage.cache_creation_input_tokens ?? 0,
    cacheReadInputTokens: response.usage.cache_read_input_tokens ?? 0,
    thinkingTokens: response.usage.output_tokens_details?.thinking_tokens ?? 0,
  };
}

/** The answer's text: the JSON object the format asks for (thinking blocks come before it). */
const answerText = (response: Anthropic.Message) =>
  response.content
    .filter((block): block is Anthropic.TextBlock => block.type === "text")
    .map((block) => block.text)
    .join("");

function interpret(definition: MetricDefinition, call: Call, response: Anthropic.Message): JudgmentResult {
  if (response.stop_reason === "max_tokens") return { ok: false, problem: "the answer was cut off at max_tokens" };
  if (response.stop_reason === "refusal") return { ok: false, problem: "the model declined to answer (refusal)" };
  let answer: unknown;
  try {
    answer = JSON.parse(answerText(response));
  } catch {
    return { ok: false, problem: "the answer is not a JSON object" };
  }
  return interpretJudgment(definition, call, answer);
}

/** The conversation so far plus a note on what to fix, for the one corrective retry. */
function correctionMessages(
  request: Anthropic.MessageCreateParamsNonStreaming,
  response: Anthropic.Message,
  problem: string,
): Anthropic.MessageParam[] {
  const note = `Invalid answer: ${problem}. Answer again with the corrected JSON object.`;
  const text = answerText(response);
  return [
    ...request.messages,
    { role: "assistant", content: text.length > 0 ? text : "(no answer)" },
    { role: "user", content: note },
  ];
}

type SendResult = Anthropic.Message | { refused: string };

/**
 * Sends a request, after a 401 once more with the key read again; reports each response's
 * usage to `onUsage` (every billed attempt counts) and returns the response, or the reason
 * the API refused it. Retryable failures and blocked keys are thrown (classifyFailure).
 */
function messageSender(deps: JudgeDeps) {
  // The limiter's bookkeeping never fails an evaluation: at worst it schedules less exactly.
  const tell = (report: Promise<void> | undefined) =>
    report?.catch((error: unknown) => logger.warn("Could not update the LLM limiter", { error: error as Error }));
  const create = async (
    client: MessagesClient,
    params: Anthropic.MessageCreateParamsNonStreaming,
    onUsage: (usage: TokenUsage) => void,
    estimatedInputTokens: number | undefined,
  ) => {
    try {
      const { data: response, response: raw } = await client.messages.create(params).withResponse();
      const usage = usageOf(response);
      onUsage(usage);
      await tell(deps.rateLimits?.answered(params.model, raw.headers, { ...usage, estimatedInputTokens }));
      return response;
    } catch (error) {
      if (error instanceof Anthropic.APIError && error.status === 429) {
        await tell(deps.rateLimits?.rateLimited(params.model, error.headers, retryAfterSeconds(error.headers)));
      }
      throw error;
    }
  };
  return async (
    params: Anthropic.MessageCreateParamsNonStreaming,
    onUsage: (usage: TokenUsage) => void,
    estimatedInputTokens?: number,
  ): Promise<SendResult> => {
    let client: MessagesClient | undefined;
    try {
      client = await deps.client();
      return await create(client, params, onUsage, estimatedInputTokens);
    } catch (error) {
      if (!(client && deps.refreshClient && isRejectedKey(error))) return { refused: classifyFailure(error) };
      try {
        return await create(await deps.refreshClient(client), params, onUsage, estimatedInputTokens);
      } catch (retryError) {
        return { refused: classifyFailure(retryError) };
      }
    }
  };
}

const noTranscript = (): EvaluationOutcome => ({
  captureStatus: "DATA_MISSING",
  context: "CALL",
  valueReasoning: "The call has no transcript to judge.",
});

const priced = (
  outcome: EvaluationOutcome,
  model: string,
  usage: TokenUsage,
  mode: LlmMode = "realtime",
): EvaluationOutcome => ({
  ...outcome,
  model,
  usage,
  estimatedCostUsd: estimateCostUsd(model, usage, mode),
});

type JudgeSettings = Pick<JudgeDeps, "defaultModel" | "maxTokens" | "effort">;

/**
 * The request that judges `definitions` on one call: one question, or several grouped (they
 * share a model and effort), with room in the answer for each.
 */
export function judgeRequestFor(
  definitions: MetricDefinition[],
  call: Call,
  settings: JudgeSettings,
): { request: Anthropic.MessageCreateParamsNonStreaming; model: string } {
  const [first] = definitions;
  const model = first?.model ?? settings.defaultModel;
  const effort = first?.effort ?? settings.effort;
  if (definitions.length === 1 && first) {
    return { request: buildJudgeRequest(first, call, { model, maxTokens: settings.maxTokens, effort }), model };
  }
  // The answer holds one judgment per question: room for each, within what models write at most.
  const maxTokens = Math.min(settings.maxTokens * definitions.length, MAX_GROUPED_OUTPUT_TOKENS);
  return { request: buildGroupedJudgeRequest(definitions, call, { model, maxTokens, effort }), model };
}

/** Characters per token, roughly, for English text and JSON: enough for an estimate the answers correct. */
export const CHARS_PER_TOKEN = 4;

/**
 * Input tokens a request likely counts toward the input-tokens limit (uncached input and
 * cache writes): all of it on a cold cache; with the call's prefix cached (`cacheWarm`),
 * only what follows the last cache breakpoint.
 */
export function estimateUncachedInputTokens(request: Anthropic.MessageCreateParamsNonStreaming, cacheWarm: boolean) {
  const blocks = request.messages.flatMap((message) =>
    typeof message.content === "string" ? [{ type: "text" as const, text: message.content }] : message.content,
  );
  const lastBreakpoint = cacheWarm ? blocks.findLastIndex((block) => "cache_control" in block) : -1;
  const system = lastBreakpoint >= 0 ? 0 : JSON.stringify(request.system ?? "").length;
  const text = blocks
    .slice(lastBreakpoint + 1)
    .reduce((sum, block) => sum + ("text" in block && typeof block.text === "string" ? block.text.length : 0), 0);
  return Math.ceil((system + text) / CHARS_PER_TOKEN);
}

/** What one answer of the Message Batches API says about each of its questions (an invalid one was billed all the same). */
export type BatchAnswer =
  | { ok: true; outcome: EvaluationOutcome }
  | { ok: false; problem: string; billed: BilledUsage };

/**
 * Reads a batch request's answer for each of `definitions`, priced at the batch price, its
 * usage split across them. No corrective retry inside a batch: an invalid answer is
 * reported, for the item to be asked again.
 */
export function interpretBatchAnswer(
  definitions: MetricDefinition[],
  call: Call,
  response: Anthropic.Message,
  model: string,
): BatchAnswer[] {
  const shares = splitUsage(usageOf(response), definitions.length);
  const [only] = definitions;
  const answers = groupedAnswers(response);
  const results: JudgmentResult[] =
    definitions.length === 1 && only
      ? [interpret(only, call, response)]
      : definitions.map((definition, i) =>
          answers.ok
            ? interpretJudgment(definition, call, answers.fields[questionKey(i)])
            : { ok: false, problem: `the grouped answer is unusable (stop reason ${response.stop_reason})` },
        );
  return results.map((result, i) => {
    const usage = shares[i] ?? emptyUsage();
    return result.ok
      ? { ok: true, outcome: priced(result.judgment, model, usage, "batch") }
      : {
          ok: false,
          problem: result.problem,
          billed: { usage, estimatedCostUsd: estimateCostUsd(model, usage, "batch") },
        };
  });
}

const refusedOutcome = (message: string): EvaluationOutcome => ({
  captureStatus: "ERROR",
  context: "CALL",
  errorMessage: message,
});

/** What was billed so far, for a failure to carry (nothing when no answer came back). */
const billedSoFar = (model: string, usage: TokenUsage): BilledUsage | undefined =>
  Object.values(usage).some((tokens) => tokens > 0)
    ? { usage, estimatedCostUsd: estimateCostUsd(model, usage) }
    : undefined;

export function createLlmJudge(deps: JudgeDeps) {
  const send = messageSender(deps);
  return async function judge(
    definition: MetricDefinition,
    call: Call,
    estimatedInputTokens?: number,
  ): Promise<EvaluationOutcome> {
    if (call.transcript.length === 0) return noTranscript();
    const { request, model } = judgeRequestFor([definition], call, deps);
    let usage = emptyUsage();
    const onUsage = (more: TokenUsage) => {
      usage = addUsage(usage, more);
    };
    try {
      const first = await send(request, onUsage, estimatedInputTokens);
      if ("refused" in first) return priced(refusedOutcome(first.refused), model, usage);
      const result = interpret(definition, call, first);
      if (result.ok) return priced(result.judgment, model, usage);
      const second = await send({ ...request, messages: correctionMessages(request, first, result.problem) }, onUsage);
      if ("refused" in second) return priced(refusedOutcome(second.refused), model, usage);
      const corrected = interpret(definition, call, second);
      if (corrected.ok) return priced(corrected.judgment, model, usage);
      const problems = `first: ${result.problem}; then: ${corrected.problem}`;
      return priced(refusedOutcome(`The model's answer was invalid twice (${problems})`), model, usage);
    } catch (error) {
      // A failure after an answer was billed (the corrective retry rate-limited): the job still pays for it.
      throw withBilledUsage(error, billedSoFar(model, usage));
    }
  };
}

/** `usage` split into `parts` integer shares that add up to it exactly (the remainder to the first shares). */
export function splitUsage(usage: TokenUsage, parts: number): TokenUsage[] {
  const share = (total: number, index: number) => Math.floor(total / parts) + (index < total % parts ? 1 : 0);
  return Array.from({ length: parts }, (_, index) => ({
    inputTokens: share(usage.inputTokens, index),
    outputTokens: share(usage.outputTokens, index),
    cacheCreationInputTokens: share(usage.cacheCreationInputTokens, index),
    cacheReadInputTokens: share(usage.cacheReadInputTokens, index),
    thinkingTokens: share(usage.thinkingTokens, index),
  }));
}

/** The grouped answer's fields by question key; not ok when the answer as a whole is unusable. */
function groupedAnswers(response: Anthropic.Message): { ok: true; fields: Record<string, unknown> } | { ok: false } {
  if (response.stop_reason !== "end_turn") return { ok: false };
  try {
    const parsed: unknown = JSON.parse(answerText(response));
    return typeof parsed === "object" && parsed !== null
      ? { ok: true, fields: parsed as Record<string, unknown> }
      : { ok: false };
  } catch {
    return { ok: false };
  }
}

/**
 * Grouped judging: every question about one call that shares a model and effort, in one request (the
 * transcript read once). Each answer field is validated against its own definition; a field
 * that is invalid, or an answer that is as a whole (a refusal, cut off, not JSON), sends its
 * metrics to the isolated judge with its one corrective retry, so one bad field fails only
 * its own item. The grouped request's usage is split across its metrics in integer shares,
 * so the items add up to what was billed.
 */
export function createGroupedLlmJudge(deps: JudgeDeps) {
  const send = messageSender(deps);
  const judgeAlone = createLlmJudge(deps);
  return async function judgeGroup(
    definitions: MetricDefinition[],
    call: Call,
    estimatedInputTokens?: number,
  ): Promise<EvaluationOutcome[]> {
    const [only] = definitions;
    if (definitions.length === 1 && only) return [await judgeAlone(only, call, estimatedInputTokens)];
    if (call.transcript.length === 0) return definitions.map(noTranscript);
    const { request, model } = judgeRequestFor(definitions, call, deps);
    let usage = emptyUsage();
    const response = await send(
      request,
      (more) => {
        usage = addUsage(usage, more);
      },
      estimatedInputTokens,
    );
    const shares = splitUsage(usage, definitions.length);
    if ("refused" in response) {
      return definitions.map((_, i) => priced(refusedOutcome(response.refused), model, shares[i] ?? emptyUsage()));
    }
    const answers = groupedAnswers(response);
    const outcomes: EvaluationOutcome[] = [];
    // One after another: the limiter admitted one request for the group, not one per metric.
    for (const [i, definition] of definitions.entries()) {
      const share = shares[i] ?? emptyUsage();
      const result = answers.ok ? interpretJudgment(definition, call, answers.fields[questionKey(i)]) : answers;
      if (result.ok) {
        outcomes.push(priced(result.judgment, model, share));
        continue;
      }
      try {
        const alone = await judgeAlone(definition, call);
        usage = addUsage(usage, alone.usage ?? emptyUsage());
        outcomes.push(priced(alone, model, addUsage(share, alone.usage ?? emptyUsage())));
      } catch (error) {
        // The whole group runs again: everything billed for it so far belongs to the job.
        const failed = billedUsageOf(error)?.usage ?? emptyUsage();
        throw withBilledUsage(error, billedSoFar(model, addUsage(usage, failed)));
      }
    }
    return outcomes;
  };
}

/** Output tokens a grouped request may use at most. */
const MAX_GROUPED_OUTPUT_TOKENS = 32_000;
