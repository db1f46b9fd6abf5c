import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { configDefaults, configKeys, envVarOf } from "../../shared/config.ts";

/** Rows of the table in docs/configuration.md: variable → documented default. */
function documented(): Map<string, string> {
  const rows = readFileSync(new URL("../../docs/configuration.md", import.meta.url), "utf8")
    .split("\n")
    .filter((line) => line.startsWith("| `"));
  return new Map(
    rows.map((line) => {
      const [variable = "", fallback = ""] = line
        .split("|")
        .slice(1, 3)
        .map((cell) => cell.trim());
      return [variable.replaceAll("`", ""), fallback];
    }),
  );
}

describe("docs/configuration.md", () => {
  it("documents every setting of shared/config.ts, nothing else, with its default", () => {
    const docs = documented();
    expect([...docs.keys()].sort()).toEqual(configKeys.map(envVarOf).sort());
    const defaults = configDefaults();
    for (const key of configKeys) {
      const value = key === "tableName" ? undefined : defaults[key];
      expect(docs.get(envVarOf(key)), envVarOf(key)).toBe(value === undefined ? "—" : `\`${String(value)}\``);
    }
  });

  it("names each variable after its setting", () => {
    expect(envVarOf("anthropicApiKeySecretId")).toBe("ANTHROPIC_API_KEY_SECRET_ID");
    expect(envVarOf("dynamodbEndpoint")).toBe("DYNAMODB_ENDPOINT");
    expect(envVarOf("region")).toBe("AWS_REGION");
  });
});
