/**
 * The Anthropic client, built once per container. The key comes from `ANTHROPIC_API_KEY`
 * locally and from Secrets Manager in AWS (cached by Powertools Parameters), never from a
 * plain environment variable in the deployed stack. A key the API rejects (rotated) makes
 * the next client read the key afresh.
 */
import Anthropic from "@anthropic-ai/sdk";
import { getSecret } from "@aws-lambda-powertools/parameters/secrets";
import { config, resetConfig } from "../config.ts";

/** No key at all: every LLM call would fail the same way, so the job stops calling. */
export class MissingApiKeyError extends Error {
  constructor() {
    super("No Anthropic API key configured: set ANTHROPIC_API_KEY locally or the secret in AWS");
    this.name = "MissingApiKeyError";
  }
}

const SECRET_MAX_AGE_SECONDS = 300;
let client: Promise<Anthropic> | undefined;

async function readApiKey(fresh: boolean): Promise<string> {
  if (fresh) resetConfig();
  const { anthropicApiKey, anthropicApiKeySecretId } = config();
  if (anthropicApiKey) return anthropicApiKey;
  if (!anthropicApiKeySecretId) throw new MissingApiKeyError();
  const secret = await getSecret<string>(anthropicApiKeySecretId, {
    maxAge: SECRET_MAX_AGE_SECONDS,
    forceFetch: fresh,
  });
  if (!secret?.trim()) throw new MissingApiKeyError();
  return secret.trim();
}

function buildClient(fresh: boolean): Promise<Anthropic> {
  const built = readApiKey(fresh)
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
      if (client === built) client = undefined;
      throw error;
    });
  client = built;
  return built;
}

export function anthropicClient(): Promise<Anthropic> {
  return client ?? buildClient(false);
}

/**
 * A client with the key read again, bypassing the secret's cache, after `rejected` got a 401.
 * Concurrent items that saw the same rejection share one re-read; a client built since is
 * returned as it is.
 */
export async function refreshAnthropicClient(rejected: Pick<Anthropic, "messages">): Promise<Anthropic> {
  const cached = client;
  const current = await cached?.catch(() => undefined);
  if (current && current !== rejected) return current;
  // Another item's refresh may have started while this one waited: share it.
  if (client && client !== cached) return client;
  return buildClient(true);
}
