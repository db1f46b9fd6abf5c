/** Failures an evaluation can signal to the pipeline, besides recording an ERROR value. */

/** Worth retrying later (rate limits, outages, timeouts); the queue owns the delay. */
export class RetryableEvaluationError extends Error {
  readonly retryAfterSeconds?: number;
  constructor(message: string, retryAfterSeconds?: number) {
    super(message);
    this.name = "RetryableEvaluationError";
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** Every further LLM call of the job would fail the same way (rejected key, no credit). */
export class LlmCallsBlockedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LlmCallsBlockedError";
  }
}
