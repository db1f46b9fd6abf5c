/**
 * The layers hold: domain code (store, pipeline, policies, backfills, analytics) throws
 * domain errors and knows nothing of HTTP; schemas depend on no store or LLM code; and only
 * the table helper names the table.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..");

function sourcesUnder(folder: string): string[] {
  return readdirSync(join(root, folder), { recursive: true, encoding: "utf8" })
    .filter((file) => file.endsWith(".ts"))
    .map((file) => join(folder, file));
}

const importsOf = (file: string) =>
  [...readFileSync(join(root, file), "utf8").matchAll(/from "([^"]+)"/g)].map((match) => match[1] ?? "");

describe("layers", () => {
  const domainFolders = ["shared/store", "shared/pipeline", "shared/policies", "shared/backfills", "shared/analytics"];

  it("keeps HTTP out of domain code", () => {
    const offenders = domainFolders
      .flatMap(sourcesUnder)
      .filter((file) => importsOf(file).some((path) => path.includes("/http/")));
    expect(offenders).toEqual([]);
  });

  it("keeps schemas free of store and LLM code", () => {
    const offenders = sourcesUnder("shared/schemas").filter((file) =>
      importsOf(file).some((path) => /\/(store|llm)\//.test(path)),
    );
    expect(offenders).toEqual([]);
  });

  it("names the table in one place", () => {
    const naming = ["shared", "functions"]
      .flatMap(sourcesUnder)
      .filter((file) => /TableName:|config\(\)\.tableName/.test(readFileSync(join(root, file), "utf8")));
    expect(naming).toEqual(["shared/store/table.ts"]);
  });

  it("catches failed conditions only in the table helper", () => {
    const catching = ["shared", "functions"]
      .flatMap(sourcesUnder)
      .filter((file) => /ConditionalCheckFailed/.test(readFileSync(join(root, file), "utf8")));
    expect(catching).toEqual(["shared/store/table.ts"]);
  });
});
