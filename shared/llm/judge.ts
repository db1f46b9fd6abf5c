/**
 * The LLM judge: one structured-output request per item, its answer validated; one
 * corrective retry when the answer is invalid (constrained decoding fixes the answer's shape,
 * not a refusal, a cut-off answer or a value of the wrong type or range for the metric). Rate limits and outages become retryable errors for the queue to
 * delay (no sleeping here); a rejected key or an empty credit balance stops the job's LLM
 * calls instead of burning retries, though a rejected key is read again and tried once
 * first (it may have been rotated).
 */
import Anthropic from "@anthropic-ai/sdk";
import { LlmCallsBlockedError, RetryableEvaluationError } from "../pipeline/evaluation-errors.ts";
import type { EvaluationOutcome } from "../pipeline/evaluators.ts";
import type { Call } from "../schemas/call.ts";
import type { TokenUsage } from "../schemas/job.ts";
import type { MetricDefinition } from "../schemas/metric.ts";
import { MissingApiKeyError } from "./client.ts";
import { interpretJudgment, type JudgmentResult } from "./judgment.ts";
import { addUsage, emptyUsage, estimateCostUsd } from "./pricing.ts";
import { buildJudgeRequest } from "./prompt.ts";

type MessagesClient = Pick<Anthropic, "messages">;

export interface JudgeDeps {
  client: () => Promise<MessagesClient>;
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

export function createLlmJudge(deps: JudgeDeps) {
  return async function judge(definition: MetricDefinition, call: Call): Promise<EvaluationOutcome> {
    if (call.transcript.length === 0) {
      return { captureStatus: "DATA_MISSING", context: "CALL", valueReasoning: "The call has no transcript to judge." };
    }
    const model = definition.model ?? deps.defaultModel;
    const request = buildJudgeRequest(definition, call, { model, maxTokens: deps.maxTokens, effort: deps.effort });
    let usage = emptyUsage();
    const priced = (outcome: EvaluationOutcome): EvaluationOutcome => ({
      ...outcome,
      model,
      usage,
      estimatedCostUsd: estimateCostUsd(model, usage),
    });

    const create = async (client: MessagesClient, params: Anthropic.MessageCreateParamsNonStreaming) => {
      const response = await client.messages.create(params);
      usage = addUsage(usage, usageOf(response));
      return response;
    };
    const send = async (params: Anthropic.MessageCreateParamsNonStreaming) => {
      let client: MessagesClient | undefined;
      try {
        client = await deps.client();
        return await create(client, params);
      } catch (error) {
        if (!(client && deps.refreshClient && isRejectedKey(error))) return { refused: classifyFailure(error) };
        try {
          return await create(await deps.refreshClient(client), params);
        } catch (retryError) {
          return { refused: classifyFailure(retryError) };
        }
      }
    };

    const first = await send(request);
    if ("refused" in first) return priced({ captureStatus: "ERROR", context: "CALL", errorMessage: first.refused });
    let result = interpret(definition, call, first);
    if (!result.ok) {
      const second = await send({ ...request, messages: correctionMessages(request, first, result.problem) });
      if ("refused" in second) return priced({ captureStatus: "ERROR", context: "CALL", errorMessage: second.refused });
      const firstProblem = result.problem;
      result = interpret(definition, call, second);
      if (!result.ok) {
        return priced({
          captureStatus: "ERROR",
          context: "CALL",
          errorMessage: `The model's answer was invalid twice (first: ${firstProblem}; then: ${result.problem})`,
        });
      }
    }
    return priced(result.judgment);
  };
}
