/** Failures an evaluation can signal to the pipeline, besides recording an ERROR value. */

/** Worth retrying later (rate limits, outages, timeouts); the queue owns the delay. */
export class RetryableEvaluationError extends Error {
  readonly retryAfterSeconds?: number;
  /** A rate limit or overload (429/529): the provider's capacity, not the item, is at fault. */
  readonly throttled: boolean;
  constructor(message: string, options: { retryAfterSeconds?: number; throttled?: boolean } = {}) {
    super(message);
    this.name = "RetryableEvaluationError";
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.throttled = options.throttled ?? false;
  }
}

/** Every further LLM call of the job would fail the same way (rejected key, no credit). */
export class LlmCallsBlockedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LlmCallsBlockedError";
  }
}
