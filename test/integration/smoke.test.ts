/** `npm run smoke` (the post-deploy check) against the local stack, so it cannot rot. */
import { execFile } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { smoke } from "../../cli/smoke.ts";
import { Client } from "../../sdk/src/index.ts";
import { startTestStack, type TestStack } from "../support/stack.ts";

const cli = fileURLToPath(new URL("../../cli/mcj.ts", import.meta.url));

/** A port nothing listens on right now. */
const freePort = () =>
  new Promise<number>((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });

function runSmoke(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cli, "smoke", ...args],
      { env: { PATH: process.env.PATH ?? "" }, timeout: 120_000 },
      (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code ?? 99) : 0, stdout: String(stdout), stderr: String(stderr) }),
    );
  });
}

describe("the smoke test", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(() => stack?.stop());

  it("passes on the local stack with a signed webhook, and a second run reuses its call and definitions", async () => {
    const runs = [];
    for (let run = 0; run < 2; run++) {
      const port = await freePort();
      const args = ["--api-url", stack.baseUrl, "--api-key", stack.apiKey];
      args.push("--webhook-url", `http://127.0.0.1:${port}/smoke`, "--webhook-port", String(port));
      const result = await runSmoke(args);
      expect(result.code, result.stderr + result.stdout).toBe(0);
      expect(result.stdout).toMatch(/ok {3}job \S+ COMPLETED, 2 of 2 items/);
      expect(result.stdout).toMatch(/ok {3}values read: 4 turns, greeting (true|false)/);
      expect(result.stdout).toMatch(
        /ok {3}webhook whd_\S+ arrived at http:\/\/127\.0\.0\.1:\d+\/smoke, signature valid/,
      );
      runs.push(result.stdout);
    }
    const callIds = runs.map((out) => out.match(/call (\S+) stored/)?.[1]);
    expect(callIds[0]).toBeDefined();
    expect(callIds[1]).toBe(callIds[0]);
    const calls = await stack.api("GET", "/v1/call?limit=100");
    expect(calls.body.data.filter((c: { externalId?: string }) => c.externalId === "mcj-smoke")).toHaveLength(1);
    const definitions = await stack.api("GET", "/v1/metric/definitions?limit=100");
    expect(definitions.body.data.map((d: { slug: string }) => d.slug).sort()).toEqual([
      "smoke-greeting",
      "smoke-turn-count",
    ]);
    const jobs = await stack.api("GET", "/v1/metric/collection-jobs?limit=50");
    expect(jobs.body.data.filter((j: { status: string }) => j.status === "COMPLETED")).toHaveLength(2);
  });

  it("fails (exit 1) when the webhook is not signed with the organization's secret", async () => {
    // The service signs with the real secret; this client is told another one.
    const tampered: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      if (!String(input).endsWith("/v1/webhook-secret")) return response;
      const body = (await response.json()) as { data: Record<string, unknown> };
      return Response.json({ data: { ...body.data, secret: "whsec_not-the-organizations-secret" } });
    };
    const client = new Client({ baseURL: stack.baseUrl, apiKey: stack.apiKey, fetch: tampered });
    const port = await freePort();
    const out: string[] = [];
    const io = {
      stdout: { write: (text: string) => out.push(text) },
      stderr: { write: (text: string) => out.push(text) },
      env: {},
    } as never;
    const code = await smoke(client, { webhookUrl: `http://127.0.0.1:${port}/smoke`, webhookPort: port }, io);
    expect(code).toBe(1);
    expect(out.join("")).toContain("FAIL the webhook's signature does not match the organization's webhook secret");
  });

  it("refuses to start without the API's address (usage error, exit 2)", async () => {
    const result = await runSmoke(["--api-key", "mcj_anything"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("Set --base-url");
  });
});
