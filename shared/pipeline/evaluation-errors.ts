/** Failures an evaluation can signal to the pipeline, besides recording an ERROR value. */
import type { BilledUsage } from "../store/jobs.ts";

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

const billedUsageKey = Symbol("billedUsage");

/**
 * Notes on a failure what the evaluation had already been billed for (an answer before a
 * rate-limited corrective retry): no value will carry it, so the job's usage must.
 */
export function withBilledUsage(error: unknown, billed: BilledUsage | undefined): unknown {
  if (billed?.usage && error instanceof Error) Object.assign(error, { [billedUsageKey]: billed });
  return error;
}

/** What a failed evaluation had been billed for (see withBilledUsage). */
export function billedUsageOf(error: unknown): BilledUsage | undefined {
  return error instanceof Error ? (error as { [billedUsageKey]?: BilledUsage })[billedUsageKey] : undefined;
}
