/**
 * A transcript shorter than the API caches (1,024 tokens for the judge's models) leaves no
 * prompt cache for a call's first request to write: on the local stack, with the fake
 * server caching as the API does, the call's requests start together instead of one model
 * latency behind its first.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCalls, createMetrics, llmMetric } from "../support/fixtures.ts";
import { runJobToEnd, startTestStack, type TestStack } from "../support/stack.ts";

const LATENCY_MS = 500;

describe("a call too short for the prompt cache", { timeout: 120_000 }, () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({
      runtime: { maxPollersPerQueue: 1 },
      anthropic: {
        latencyMs: LATENCY_MS,
        // The API's threshold: the test transcripts' prefixes are far shorter.
        minCacheableTokens: 1024,
      },
    });
  });
  afterAll(() => stack?.stop());

  it("starts its requests together: there is no cache for a first one to write", async () => {
    const metrics = await createMetrics(
      stack.api,
      Array.from({ length: 4 }, (_, i) => llmMetric(`short-${i}`, "BOOLEAN", `Was "thanks" said (${i})?`)),
    );
    const callIds = await createCalls(stack.api, 2);
    expect(await runJobToEnd(stack.api, callIds, metrics, 60_000)).toMatchObject({ completedItems: 8 });

    const served = stack.anthropic.requests();
    expect(served).toHaveLength(8);
    for (const request of served) expect(request.usage?.cache_creation_input_tokens).toBe(0);
    // The job's first request goes alone (it has paid for none); the other seven start
    // together, not a call's first one model latency before its others.
    const [, ...others] = served.map((request) => request.receivedAt).sort((a, b) => a - b);
    expect(Math.max(...others) - Math.min(...others)).toBeLessThan(LATENCY_MS / 2);
  });
});
