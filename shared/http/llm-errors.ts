import { LlmCallsBlockedError, RetryableEvaluationError } from "../pipeline/evaluation-errors.ts";
import { ApiError } from "./errors.ts";

/**
 * A synchronous LLM evaluation (the playground) that failed, as an HTTP error: rate limited
 * or down → 503 with Retry-After; key rejected or account unbillable → 502. Anything else
 * is rethrown as it is.
 */
export function llmFailureAsHttp(error: unknown): never {
  if (error instanceof RetryableEvaluationError) {
    const retryAfter = String(Math.max(1, error.retryAfterSeconds ?? 5));
    throw new ApiError(503, "llm_unavailable", `The LLM is unavailable right now: ${error.message}`, {
      headers: { "retry-after": retryAfter },
    });
  }
  if (error instanceof LlmCallsBlockedError) throw new ApiError(502, "llm_rejected", error.message);
  throw error;
}
