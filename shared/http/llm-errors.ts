import { config } from "../config.ts";
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

/**
 * A synchronous LLM evaluation held to the playground's deadline: API Gateway gives up on a
 * request after 30 s, so a slower model answers 504 with what to do instead of a bare timeout.
 */
export async function withinPlaygroundDeadline<T>(work: Promise<T>): Promise<T> {
  const deadlineMs = config().playgroundDeadlineMs;
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const seconds = (deadlineMs / 1000).toLocaleString("en-US", { maximumFractionDigits: 1 });
      reject(
        new ApiError(
          504,
          "llm_timeout",
          `The model did not answer within ${seconds} s (the API answers within 30 s): try fewer metrics, or run them as a job`,
        ),
      );
    }, deadlineMs);
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}
