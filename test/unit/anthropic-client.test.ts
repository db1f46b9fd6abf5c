import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { mockClient } from "aws-sdk-client-mock";
import { expect, it } from "vitest";
import { anthropicClient, refreshAnthropicClient } from "../../shared/llm/client.ts";

const secrets = mockClient(SecretsManagerClient);

it("re-reads the secret past its cache after a rejected key, once for concurrent rejections", async () => {
  delete process.env.ANTHROPIC_API_KEY;
  process.env.ANTHROPIC_API_KEY_SECRET_ID = "anthropic-key";
  secrets.on(GetSecretValueCommand).resolvesOnce({ SecretString: "old-key" }).resolves({ SecretString: "new-key" });

  const stale = await anthropicClient();
  expect(stale.apiKey).toBe("old-key");
  // Within the cache's max age, a plain read would still answer the old key.
  expect(await anthropicClient()).toBe(stale);

  const [first, second] = await Promise.all([refreshAnthropicClient(stale), refreshAnthropicClient(stale)]);
  expect(first.apiKey).toBe("new-key");
  expect(second).toBe(first);
  expect(await anthropicClient()).toBe(first);
  expect(secrets.commandCalls(GetSecretValueCommand)).toHaveLength(2);
  // A late rejection of the old client gets the refreshed one without another read.
  expect(await refreshAnthropicClient(stale)).toBe(first);
  expect(secrets.commandCalls(GetSecretValueCommand)).toHaveLength(2);
});
