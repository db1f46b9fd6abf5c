/**
 * List prices in USD per million tokens, used to estimate the cost of each judgment and of
 * a job. Cache writes (5-minute TTL) cost 1.25× input, cache reads 0.1× input; the Message
 * Batches API bills every kind of token at half its price. `LLM_PRICES_JSON` overrides or
 * adds models without a release.
 */
import { z } from "zod";
import { config } from "../config.ts";
import type { LlmMode, TokenUsage } from "../schemas/job.ts";

const modelPriceSchema = z.strictObject({
  input: z.number().nonnegative(),
  output: z.number().nonnegative(),
  cacheWrite: z.number().nonnegative(),
  cacheRead: z.number().nonnegative(),
});
export type ModelPrice = z.infer<typeof modelPriceSchema>;

const listPrice = (input: number, output: number): ModelPrice => ({
  input,
  output,
  cacheWrite: input * 1.25,
  cacheRead: input * 0.1,
});

/** Published list prices as of November 2026; check https://claude.com/pricing and override as needed. */
const defaultPriceTable: Record<string, ModelPrice> = {
  "claude-sonnet-5-5": listPrice(2, 10),
  "claude-sonnet-5": listPrice(2, 10),
  "claude-opus-5-5": { ...listPrice(4, 20), cacheRead: 0.2 },
  "claude-opus-5": listPrice(5, 25),
  "claude-sonnet-4-6": listPrice(3, 15),
  "claude-opus-4-5": listPrice(5, 25),
  "claude-opus-4-1": listPrice(15, 75),
  "claude-sonnet-4-5": listPrice(3, 15),
  "claude-sonnet-4-0": listPrice(3, 15),
  "claude-haiku-4-5": listPrice(1, 5),
  "claude-3-5-haiku-latest": listPrice(0.8, 4),
};

let priceTable: Record<string, ModelPrice> | undefined;

function prices(): Record<string, ModelPrice> {
  if (!priceTable) {
    const overrides = config().llmPricesJson;
    priceTable = {
      ...defaultPriceTable,
      ...(overrides ? z.record(z.string(), modelPriceSchema).parse(JSON.parse(overrides)) : {}),
    };
  }
  return priceTable;
}

/** Dated model ids (claude-sonnet-4-5-20250929) are priced like their alias. */
export function priceOf(model: string): ModelPrice | undefined {
  const table = prices();
  return table[model] ?? table[model.replace(/-\d{8}$/, "")];
}

/** The Message Batches API's discount on every kind of token. */
export const BATCH_PRICE_FACTOR = 0.5;

/** Estimated cost in USD, rounded to a millionth of a dollar; undefined for an unpriced model. */
export function estimateCostUsd(model: string, usage: TokenUsage, mode: LlmMode = "realtime"): number | undefined {
  const price = priceOf(model);
  if (!price) return undefined;
  const perMillion =
    usage.inputTokens * price.input +
    usage.outputTokens * price.output +
    usage.cacheCreationInputTokens * price.cacheWrite +
    usage.cacheReadInputTokens * price.cacheRead;
  return Math.round(perMillion * (mode === "batch" ? BATCH_PRICE_FACTOR : 1)) / 1_000_000;
}

export const emptyUsage = (): TokenUsage => ({
  inputTokens: 0,
  outputTokens: 0,
  cacheCreationInputTokens: 0,
  cacheReadInputTokens: 0,
  thinkingTokens: 0,
});

export function addUsage(a: TokenUsage, b: TokenUsage): TokenUsage {
  return {
    inputTokens: a.inputTokens + b.inputTokens,
    outputTokens: a.outputTokens + b.outputTokens,
    cacheCreationInputTokens: a.cacheCreationInputTokens + b.cacheCreationInputTokens,
    cacheReadInputTokens: a.cacheReadInputTokens + b.cacheReadInputTokens,
    // Values stored before thinking tokens were recorded have none.
    thinkingTokens: (a.thinkingTokens ?? 0) + (b.thinkingTokens ?? 0),
  };
}
