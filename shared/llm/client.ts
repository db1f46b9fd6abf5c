/**
 * The Anthropic client, built once per container. The key comes from `ANTHROPIC_API_KEY`
 * locally and from Secrets Manager in AWS (cached by Powertools Parameters), never from a
 * plain environment variable in the deployed stack.
 */
import Anthropic from "@anthropic-ai/sdk";
import { getSecret } from "@aws-lambda-powertools/parameters/secrets";
import { config } from "../config.ts";

/** No key at all: every LLM call would fail the same way, so the job stops calling. */
export class MissingApiKeyError extends Error {
  constructor() {
    super("No Anthropic API key configured: set ANTHROPIC_API_KEY locally or the secret in AWS");
    this.name = "MissingApiKeyError";
  }
}

const SECRET_MAX_AGE_SECONDS = 300;
let client: Promise<Anthropic> | undefined;

async function readApiKey(): Promise<string> {
  const { anthropicApiKey, anthropicApiKeySecretId } = config();
  if (anthropicApiKey) return anthropicApiKey;
  if (!anthropicApiKeySecretId) throw new MissingApiKeyError();
  const secret = await getSecret<string>(anthropicApiKeySecretId, { maxAge: SECRET_MAX_AGE_SECONDS });
  if (!secret?.trim()) throw new MissingApiKeyError();
  return secret.trim();
}

export function anthropicClient(): Promise<Anthropic> {
  client ??= readApiKey()
    .then(
      (apiKey) =>
        new Anthropic({
          apiKey,
          baseURL: config().anthropicBaseUrl,
          maxRetries: config().anthropicMaxRetries,
          timeout: config().anthropicTimeoutMs,
        }),
    )
    .catch((error: unknown) => {
      // Try again on the next call (the secret may be set in the meantime).
      client = undefined;
      throw error;
    });
  return client;
}
