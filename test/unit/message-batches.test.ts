/**
 * The fake server's Message Batches API through the real @anthropic-ai/sdk client: create,
 * retrieve, list, results as JSONL, cancel, errored and expired requests; and batch prices.
 */
import Anthropic from "@anthropic-ai/sdk";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type FakeAnthropic, startFakeAnthropic } from "../../infra/local/fake-anthropic.ts";
import { estimateCostUsd } from "../../shared/llm/pricing.ts";
import { buildJudgeRequest } from "../../shared/llm/prompt.ts";
import { judgedCall as call, judgedDefinition as definition } from "../support/judge-fixtures.ts";

let fake: FakeAnthropic;
let client: Anthropic;

const request = (customId: string, llmPrompt: string) => ({
  custom_id: customId,
  params: buildJudgeRequest(definition({ outputType: "BOOLEAN", llmPrompt }), call, {
    model: "claude-sonnet-5-5",
    maxTokens: 512,
  }),
});

async function resultsOf(batchId: string) {
  const lines: Anthropic.Messages.MessageBatchIndividualResponse[] = [];
  for await (const line of await client.messages.batches.results(batchId)) lines.push(line);
  return lines;
}

beforeAll(async () => {
  fake = await startFakeAnthropic({ minCacheableTokens: 0 });
  client = new Anthropic({ apiKey: "test", baseURL: fake.url, maxRetries: 0 });
});
afterAll(() => fake?.stop());
beforeEach(() => {
  fake.reset();
  fake.configure({ fault: undefined, batchProcessingMs: 0, batchesExpire: false, batchCacheHitRate: undefined });
});

describe("fake Message Batches API", () => {
  it("processes a batch after its delay and answers each request as the Messages endpoint would", async () => {
    fake.configure({ batchProcessingMs: 200 });
    const created = await client.messages.batches.create({
      requests: [request("r0", 'Was a "refund" offered?'), request("r1", 'Was a "discount" offered?')],
    });
    expect(created).toMatchObject({ processing_status: "in_progress", results_url: null });
    expect(created.request_counts.processing).toBe(2);
    await expect(client.messages.batches.results(created.id)).rejects.toThrow(/results_url/);

    await new Promise((resolve) => setTimeout(resolve, 250));
    const ended = await client.messages.batches.retrieve(created.id);
    expect(ended.processing_status).toBe("ended");
    expect(ended.request_counts).toMatchObject({ processing: 0, succeeded: 2, errored: 0 });
    const lines = await resultsOf(created.id);
    const answers = Object.fromEntries(
      lines.map(({ custom_id, result }) => {
        if (result.type !== "succeeded") throw new Error(result.type);
        const text = result.message.content.find((block) => block.type === "text");
        return [custom_id, JSON.parse(text?.type === "text" ? text.text : "{}").value];
      }),
    );
    expect(answers).toEqual({ r0: true, r1: false });
    // The requests share the transcript's cache, best effort as in the real API.
    const logged = fake.requests();
    expect(logged.map((r) => r.batchId)).toEqual([created.id, created.id]);
    expect(logged[1]?.usage?.cache_read_input_tokens).toBeGreaterThan(0);
  });

  it("lists batches newest first, pages with after_id, and refuses duplicate custom ids", async () => {
    const first = await client.messages.batches.create({ requests: [request("a", "Q?")] });
    const second = await client.messages.batches.create({ requests: [request("a", "Q?")] });
    const page = await client.messages.batches.list({ limit: 1 });
    expect(page.data.map((b) => b.id)).toEqual([second.id]);
    expect(page.has_more).toBe(true);
    const all: string[] = [];
    for await (const batch of client.messages.batches.list({ limit: 1 })) all.push(batch.id);
    expect(all).toEqual([second.id, first.id]);
    await expect(
      client.messages.batches.create({ requests: [request("dup", "Q?"), request("dup", "Q?")] }),
    ).rejects.toMatchObject({ status: 400 });
    await expect(client.messages.batches.create({ requests: [request("bad id!", "Q?")] })).rejects.toMatchObject({
      status: 400,
    });
  });

  it("ends a request the API would refuse as errored, and expired batches as expired", async () => {
    fake.configure({ fault: (r) => (r.index === 1 ? "server_error" : undefined) });
    const batch = await client.messages.batches.create({ requests: [request("r0", "Q?"), request("r1", "Q?")] });
    const lines = await resultsOf(batch.id);
    expect(lines.find((l) => l.custom_id === "r0")?.result).toMatchObject({
      type: "errored",
      error: { type: "error", error: { type: "api_error" } },
    });
    expect(lines.find((l) => l.custom_id === "r1")?.result.type).toBe("succeeded");

    fake.configure({ fault: undefined, batchesExpire: true });
    const expiring = await client.messages.batches.create({ requests: [request("r0", "Q?")] });
    expect((await resultsOf(expiring.id)).map((l) => l.result.type)).toEqual(["expired"]);
  });

  it("cancels a batch in progress: canceling, then ended with its requests canceled", async () => {
    fake.configure({ batchProcessingMs: 60_000 });
    const batch = await client.messages.batches.create({ requests: [request("r0", "Q?")] });
    const canceling = await client.messages.batches.cancel(batch.id);
    expect(canceling.processing_status).toBe("canceling");
    expect(canceling.cancel_initiated_at).not.toBeNull();
    const ended = await client.messages.batches.retrieve(batch.id);
    expect(ended).toMatchObject({ processing_status: "ended", request_counts: { canceled: 1 } });
    expect((await resultsOf(batch.id)).map((l) => l.result.type)).toEqual(["canceled"]);
    expect(fake.requests()).toHaveLength(0);
    await expect(client.messages.batches.retrieve("msgbatch_missing")).rejects.toMatchObject({ status: 404 });
  });
});

describe("prompt cache inside a batch", () => {
  /** Cache reads of a batch of `count` questions on one call, at the given hit rate. */
  async function cacheReads(batchCacheHitRate: number | undefined, count: number) {
    fake.reset();
    fake.configure({ batchCacheHitRate });
    const requests = Array.from({ length: count }, (_, i) => request(`r${i}`, `Was "word${i}" said?`));
    const created = await client.messages.batches.create({ requests });
    await client.messages.batches.retrieve(created.id);
    return fake.requests().filter((r) => (r.usage?.cache_read_input_tokens ?? 0) > 0).length;
  }

  it("is best effort: a configured share of the requests that could read the cache does", async () => {
    // 40 questions on one call: the first writes the transcript, 39 could read it.
    expect(await cacheReads(undefined, 40)).toBe(39);
    expect(await cacheReads(0, 40)).toBe(0);
    const half = await cacheReads(0.5, 40);
    expect(half).toBeGreaterThan(10);
    expect(half).toBeLessThan(30);
    // Deterministic: the same requests hit the same way each time.
    expect(await cacheReads(0.5, 40)).toBe(half);
  });
});

describe("batch prices", () => {
  it("bill input, output, cache writes and cache reads at half the standard price", () => {
    const usage = {
      inputTokens: 1_000_000,
      outputTokens: 100_000,
      cacheCreationInputTokens: 200_000,
      cacheReadInputTokens: 3_000_000,
      thinkingTokens: 0,
    };
    const standard = estimateCostUsd("claude-sonnet-5-5", usage) ?? 0;
    expect(standard).toBeCloseTo(2 + 1 + 0.5 + 0.6, 6);
    expect(estimateCostUsd("claude-sonnet-5-5", usage, "batch")).toBeCloseTo(standard / 2, 6);
    expect(estimateCostUsd("claude-sonnet-5-5", usage, "realtime")).toBe(standard);
  });
});
