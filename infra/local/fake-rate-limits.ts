/**
 * The Messages API's rate limits, as Anthropic documents them, for the fake server: per
 * model, requests, input tokens and output tokens per minute, each a token bucket refilled
 * continuously up to its limit. Input tokens are the uncached ones (input plus cache writes;
 * cache reads do not count). Output tokens are reserved at `max_tokens` when a request is
 * admitted and the unused part returned when it ends. A request that does not fit is
 * answered 429 with `retry-after` and the `anthropic-ratelimit-*` headers, which every
 * answer carries. Overload bursts answer 529 for a while, as the API does under load.
 */

export interface RateLimits {
  requestsPerMinute?: number;
  inputTokensPerMinute?: number;
  outputTokensPerMinute?: number;
}

export interface OverloadBursts {
  /** A burst starts every this many milliseconds (counted from the server's start)… */
  everyMs: number;
  /** …and lasts this long. */
  lastsMs: number;
}

type Dimension = "requests" | "input-tokens" | "output-tokens";

class Bucket {
  readonly limit: number;
  #level: number;
  #at: number;
  constructor(limit: number, now: number) {
    this.limit = limit;
    this.#level = limit;
    this.#at = now;
  }
  level(now: number): number {
    this.#level = Math.min(this.limit, this.#level + ((now - this.#at) / 60_000) * this.limit);
    this.#at = now;
    return this.#level;
  }
  take(amount: number, now: number) {
    this.#level = this.level(now) - amount;
  }
  /** Milliseconds until `amount` fits. */
  waitFor(amount: number, now: number): number {
    const missing = amount - this.level(now);
    return missing <= 0 ? 0 : Math.ceil((missing / this.limit) * 60_000);
  }
  /** When the bucket is full again. */
  fullAt(now: number): number {
    return now + Math.ceil(((this.limit - this.level(now)) / this.limit) * 60_000);
  }
}

export interface Admission {
  admitted: boolean;
  headers: Record<string, string>;
  /** Returns the unused output reservation when the request ends. */
  finish(outputTokens: number): void;
}

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

export function createRateLimiter(limits: () => RateLimits | undefined, now: () => number = Date.now) {
  const buckets = new Map<string, Map<Dimension, Bucket>>();

  function bucketsOf(model: string, current: RateLimits): Map<Dimension, Bucket> {
    const key = `${model}|${current.requestsPerMinute}|${current.inputTokensPerMinute}|${current.outputTokensPerMinute}`;
    let found = buckets.get(key);
    if (!found) {
      const t = now();
      found = new Map();
      if (current.requestsPerMinute) found.set("requests", new Bucket(current.requestsPerMinute, t));
      if (current.inputTokensPerMinute) found.set("input-tokens", new Bucket(current.inputTokensPerMinute, t));
      if (current.outputTokensPerMinute) found.set("output-tokens", new Bucket(current.outputTokensPerMinute, t));
      buckets.set(key, found);
    }
    return found;
  }

  function headersOf(model: Map<Dimension, Bucket>, t: number): Record<string, string> {
    const headers: Record<string, string> = {};
    for (const [dimension, bucket] of model) {
      headers[`anthropic-ratelimit-${dimension}-limit`] = String(bucket.limit);
      headers[`anthropic-ratelimit-${dimension}-remaining`] = String(Math.max(0, Math.floor(bucket.level(t))));
      headers[`anthropic-ratelimit-${dimension}-reset`] = iso(bucket.fullAt(t));
    }
    // `tokens-*`: the more restrictive of the input and output token limits.
    const tokens = [model.get("input-tokens"), model.get("output-tokens")]
      .filter((bucket): bucket is Bucket => bucket !== undefined)
      .sort((a, b) => a.level(t) - b.level(t))[0];
    if (tokens) {
      headers["anthropic-ratelimit-tokens-limit"] = String(tokens.limit);
      headers["anthropic-ratelimit-tokens-remaining"] = String(Math.max(0, Math.floor(tokens.level(t))));
      headers["anthropic-ratelimit-tokens-reset"] = iso(tokens.fullAt(t));
    }
    return headers;
  }

  return {
    /** Admits a request needing `inputTokens` (uncached) and up to `maxTokens` of output, or refuses it. */
    admit(model: string, inputTokens: number, maxTokens: number): Admission {
      const current = limits();
      const none: Admission = { admitted: true, headers: {}, finish: () => {} };
      if (!current) return none;
      const model_ = bucketsOf(model, current);
      const t = now();
      const needs: [Dimension, number][] = [
        ["requests", 1],
        ["input-tokens", inputTokens],
        ["output-tokens", maxTokens],
      ];
      const wait = Math.max(0, ...needs.map(([dimension, amount]) => model_.get(dimension)?.waitFor(amount, t) ?? 0));
      if (wait > 0) {
        const headers = { ...headersOf(model_, t), "retry-after": String(Math.max(1, Math.ceil(wait / 1000))) };
        return { admitted: false, headers, finish: () => {} };
      }
      for (const [dimension, amount] of needs) model_.get(dimension)?.take(amount, t);
      const headers = headersOf(model_, t);
      return {
        admitted: true,
        headers,
        finish: (outputTokens) => model_.get("output-tokens")?.take(outputTokens - maxTokens, now()),
      };
    },
    reset: () => buckets.clear(),
  };
}

/** Whether an overload burst is on at `t`, and for how long still. */
export function overloadedFor(bursts: OverloadBursts | undefined, startedAt: number, t: number): number {
  if (!bursts) return 0;
  const into = (t - startedAt) % bursts.everyMs;
  const sinceStart = t - startedAt;
  // The first burst comes after one period, not at the start.
  return sinceStart >= bursts.everyMs && into < bursts.lastsMs ? bursts.lastsMs - into : 0;
}
