/**
 * The fake Anthropic server's rate limits behave as Anthropic documents them, seen through
 * the real SDK (no retries): per-model token buckets for requests, uncached input tokens and
 * output tokens (reserved at max_tokens, the unused part returned), 429 with retry-after
 * and the anthropic-ratelimit-* headers, and 529 overload bursts.
 */
import Anthropic from "@anthropic-ai/sdk";
import { afterEach, describe, expect, it } from "vitest";
import { type FakeAnthropic, startFakeAnthropic } from "../../infra/local/fake-anthropic.ts";

let fake: FakeAnthropic | undefined;
afterEach(() => fake?.stop());

const MODEL = "claude-haiku-4-5";
const client = (url: string) => new Anthropic({ apiKey: "test", baseURL: url, maxRetries: 0 });

/** A question about a transcript: its first block is cached when `cached`. */
function ask(transcript: string, maxTokens = 64, cached = false) {
  return {
    model: MODEL,
    max_tokens: maxTokens,
    messages: [
      {
        role: "user" as const,
        content: [
          {
            type: "text" as const,
            text: `<transcript>${transcript}</transcript>`,
            ...(cached ? { cache_control: { type: "ephemeral" as const } } : {}),
          },
          { type: "text" as const, text: "Did the agent greet the caller?" },
        ],
      },
    ],
  };
}

async function send(api: Anthropic, body: ReturnType<typeof ask>) {
  const { response } = await api.messages
    .create(body)
    .withResponse()
    .catch((error: unknown) => {
      if (error instanceof Anthropic.APIError) return { response: { status: error.status, headers: error.headers } };
      throw error;
    });
  return { status: response.status as number, header: (name: string) => response.headers?.get(name) ?? null };
}

describe("the fake server's rate limits", () => {
  it("refuses requests past the per-minute request limit with 429 and retry-after, then refills", async () => {
    fake = await startFakeAnthropic({ rateLimits: { requestsPerMinute: 30 } });
    const api = client(fake.url);
    // A full bucket lets 30 through at once; it refills at one request every 2 seconds.
    let refused: Awaited<ReturnType<typeof send>> | undefined;
    let admitted = 0;
    for (let i = 0; i < 40 && !refused; i++) {
      const answer = await send(api, ask(`call ${i}`));
      if (answer.status === 429) refused = answer;
      else admitted++;
    }
    expect(admitted).toBeGreaterThanOrEqual(30);
    // A slow machine refills a request or two while the loop runs.
    expect(admitted).toBeLessThanOrEqual(33);
    expect(refused?.status).toBe(429);
    expect(Number(refused?.header("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(refused?.header("anthropic-ratelimit-requests-limit")).toBe("30");
    expect(refused?.header("anthropic-ratelimit-requests-remaining")).toBe("0");
    expect(refused?.header("anthropic-ratelimit-requests-reset")).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    await new Promise((resolve) => setTimeout(resolve, 2100));
    expect((await send(api, ask("after two seconds"))).status).toBe(200);
    // Another model has buckets of its own.
    expect((await send(api, { ...ask("other model"), model: "claude-sonnet-4-5" })).status).toBe(200);
  });

  it("counts uncached input only: a prompt read from the cache fits where the same prompt uncached does not", async () => {
    fake = await startFakeAnthropic({ minCacheableTokens: 0, rateLimits: { inputTokensPerMinute: 3000 } });
    const api = client(fake.url);
    const transcript = "x".repeat(4 * 1800);
    const first = await send(api, ask(transcript, 64, true));
    expect(first.status).toBe(200);
    const left = Number(first.header("anthropic-ratelimit-input-tokens-remaining"));
    expect(left).toBeLessThan(1200);
    // The same transcript again: read from the cache, so only the question counts.
    const cachedAgain = await send(api, ask(transcript, 64, true));
    expect(cachedAgain.status).toBe(200);
    expect(Number(cachedAgain.header("anthropic-ratelimit-input-tokens-remaining"))).toBeGreaterThan(left - 50);
    // Another transcript of the same size is uncached input: it no longer fits.
    const uncached = await send(api, ask("y".repeat(4 * 1800), 64, true));
    expect(uncached.status).toBe(429);
    expect(uncached.header("anthropic-ratelimit-input-tokens-remaining")).not.toBeNull();
  });

  it("reserves output tokens at max_tokens and returns what the answer did not use", async () => {
    fake = await startFakeAnthropic({ rateLimits: { outputTokensPerMinute: 1000 } });
    const api = client(fake.url);
    const answered = await send(api, ask("a short call", 900));
    expect(answered.status).toBe(200);
    // Reserved 900 while it ran; the answer used a few dozen, the rest came back.
    expect(Number(answered.header("anthropic-ratelimit-output-tokens-remaining"))).toBeLessThan(200);
    const next = await send(api, ask("another call", 900));
    expect(next.status).toBe(200);
    expect((await send(api, ask("a third", 990))).status).toBe(429);
    expect(fake.requests().map((request) => request.status)).toEqual([200, 200, 429]);
    expect(fake.requests()[2]?.fault).toBe("rate_limit");
  });

  it("answers 529 overloaded during a burst, with retry-after, and 200 after it", async () => {
    fake = await startFakeAnthropic({ overloadBursts: { everyMs: 2000, lastsMs: 1000 } });
    const api = client(fake.url);
    expect((await send(api, ask("before the first burst"))).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 2050));
    const during = await send(api, ask("in the burst"));
    expect(during.status).toBe(529);
    expect(Number(during.header("retry-after"))).toBeGreaterThanOrEqual(1);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect((await send(api, ask("after the burst"))).status).toBe(200);
  });
});
