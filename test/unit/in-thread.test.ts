/**
 * A local stand-in service on a thread of its own (infra/local/in-thread.ts), with the fake
 * Anthropic server as the service: fields are copied, methods answer through messages.
 */
import Anthropic from "@anthropic-ai/sdk";
import { describe, expect, it } from "vitest";
import type { FakeAnthropic } from "../../infra/local/fake-anthropic.ts";
import { startInThread } from "../../infra/local/in-thread.ts";

const fakeModule = new URL("../../infra/local/fake-anthropic.ts", import.meta.url);

describe("startInThread", () => {
  it("serves from another thread, changes its options and forgets on request, and stops", async () => {
    const fake = await startInThread<FakeAnthropic>(fakeModule, "startFakeAnthropic", { latencyMs: 0 });
    const client = new Anthropic({ apiKey: "test", baseURL: fake.url, maxRetries: 0 });
    const ask = (headers: Record<string, string> = {}) =>
      client.messages.create(
        { model: "claude-sonnet-5-5", max_tokens: 64, messages: [{ role: "user", content: "Hello" }] },
        { headers },
      );
    try {
      const answer = await ask();
      expect(answer.type).toBe("message");
      expect((await fake.requests()).map((request) => request.index)).toEqual([1]);

      await fake.configure({ retryAfterSeconds: 7 });
      const limited = await ask({ "x-fake-fault": "rate_limit" }).catch((error: unknown) => error);
      expect(limited).toBeInstanceOf(Anthropic.RateLimitError);
      expect((limited as InstanceType<typeof Anthropic.RateLimitError>).headers.get("retry-after")).toBe("7");

      await fake.reset();
      expect(await fake.requests()).toEqual([]);
    } finally {
      await fake.stop();
    }
    await expect(ask()).rejects.toThrow();
  });

  it("fails to start when the module has no such export", async () => {
    await expect(startInThread(fakeModule, "startNothing")).rejects.toThrow(/exports no function startNothing/);
  });
});
