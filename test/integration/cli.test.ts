/** The `mcj` CLI as a child process against a test stack (stdout/stderr are pipes: no TTY). */
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { builtInMetric, llmMetric, sampleCall } from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitForJobEnd } from "../support/stack.ts";

const cli = fileURLToPath(new URL("../../cli/mcj.ts", import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe("mcj CLI", () => {
  let stack: TestStack;
  let dir: string;

  function mcj(args: string[], env: Record<string, string> = {}): Promise<Run> {
    return new Promise((resolve) => {
      execFile(
        process.execPath,
        [cli, ...args],
        {
          env: { PATH: process.env.PATH ?? "", MCJ_BASE_URL: stack.baseUrl, MCJ_API_KEY: stack.apiKey, ...env },
          timeout: 60_000,
        },
        (error, stdout, stderr) => {
          const code = error ? (typeof error.code === "number" ? error.code : 99) : 0;
          resolve({ code, stdout: String(stdout), stderr: String(stderr) });
        },
      );
    });
  }

  beforeAll(async () => {
    stack = await startTestStack();
    dir = mkdtempSync(join(tmpdir(), "mcj-cli-"));
  });
  afterAll(() => stack?.stop());

  it("imports calls from JSONL, reporting rejected lines with their numbers (exit 1)", async () => {
    const file = join(dir, "calls.jsonl");
    writeFileSync(
      file,
      [
        JSON.stringify(sampleCall({ externalId: "cli-1" }, 1)),
        "{not json",
        "",
        JSON.stringify({ ...sampleCall({ externalId: "cli-bad" }), startedAt: "yesterday" }),
        JSON.stringify(sampleCall({ externalId: "cli-2" }, 2)),
      ].join("\n"),
    );
    const run = await mcj(["calls", "import", file]);
    expect(run.code, run.stderr).toBe(1);
    expect(run.stdout).toContain("Imported 2 calls, rejected 2 of 4 lines");
    expect(run.stderr).toMatch(/line 2: rejected: not valid JSON/);
    expect(run.stderr).toMatch(/line 4: rejected: 400 body\.startedAt/);
    const listed = await stack.api("GET", "/v1/call?limit=10");
    expect(listed.body.data.map((c: { externalId: string }) => c.externalId).sort()).toEqual(["cli-1", "cli-2"]);
    const byExternalId = await mcj(["calls", "list", "--external-id", "cli-2"]);
    expect(byExternalId.code, byExternalId.stderr).toBe(0);
    expect(byExternalId.stdout).toContain("cli-2");
    expect(byExternalId.stdout).not.toContain("cli-1");
  });

  it("connects a platform with the secret from the environment, lists, rotates and deletes it (integrations)", async () => {
    const secret = "key_cli_retell_secret";
    expect((await mcj(["integrations", "create", "--provider", "retell", "--name", "CLI line"])).code).toBe(2);
    expect(
      (await mcj(["integrations", "create", "--provider", "twilio", "--name", "x"], { MCJ_INTEGRATION_SECRET: secret }))
        .code,
    ).toBe(2);
    const created = await mcj(["integrations", "create", "--provider", "retell", "--name", "CLI line"], {
      MCJ_INTEGRATION_SECRET: secret,
    });
    expect(created.code, created.stderr).toBe(0);
    const integration = JSON.parse(created.stdout);
    expect(integration).toMatchObject({ provider: "retell", name: "CLI line" });
    expect(created.stderr).toContain(`/v1/integrations/retell/${integration.id}/events`);
    expect(created.stdout + created.stderr).not.toContain(secret);
    const listed = await mcj(["integrations", "list"]);
    expect(listed.stdout).toContain(integration.id);
    const rotated = await mcj(["integrations", "rotate", integration.id, "--grace-seconds", "120"], {
      MCJ_INTEGRATION_SECRET: "key_cli_retell_next",
    });
    expect(rotated.code, rotated.stderr).toBe(0);
    expect(JSON.parse(rotated.stdout).previousSecretValidUntil).toEqual(expect.any(String));
    // A saved Retell payload replayed as Retell would send it, signed with the secret now in force.
    const payload = join(dir, "retell-call-ended.json");
    writeFileSync(
      payload,
      JSON.stringify({
        event: "call_ended",
        call: {
          call_id: "cli-replayed",
          agent_id: "agent_cli",
          start_timestamp: Date.UTC(2026, 11, 1),
          transcript_object: [],
        },
      }),
    );
    const replayed = await mcj(["integrations", "replay", integration.id, "--file", payload], {
      MCJ_INTEGRATION_SECRET: "key_cli_retell_next",
    });
    expect(replayed.code, replayed.stderr).toBe(0);
    expect(replayed.stdout).toMatch(/^200 .*"outcome":"created"/);
    const [replayedCall] = (await stack.api("GET", "/v1/call?externalId=cli-replayed")).body.data;
    expect(replayedCall).toBeDefined();
    // Later tests run jobs on every call.
    await stack.api("DELETE", `/v1/call/${replayedCall.id}`);
    const wrongSecret = await mcj(["integrations", "replay", integration.id, "--file", payload], {
      MCJ_INTEGRATION_SECRET: "key_not_the_secret",
    });
    expect(wrongSecret.code).toBe(3);
    expect(wrongSecret.stdout).toMatch(/^401 /);
    expect((await mcj(["integrations", "delete", integration.id])).code).toBe(0);
    expect((await mcj(["integrations", "show", integration.id])).code).toBe(3);
  });

  it("deletes a call (calls delete)", async () => {
    const created = await stack.api("POST", "/v1/call", sampleCall({ externalId: "cli-forget" }));
    const run = await mcj(["calls", "delete", created.body.data.id]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('"deleted": true');
    expect((await stack.api("GET", `/v1/call/${created.body.data.id}`)).status).toBe(404);
    expect((await mcj(["calls", "delete", "no-such-call"])).code).toBe(3);
  });

  it("reviews a value and reports the agreement (jobs review, metrics agreement)", async () => {
    const created = await stack.api("POST", "/v1/call", sampleCall({ externalId: "cli-reviewed" }));
    const callId = created.body.data.id;
    await stack.api(
      "POST",
      "/v1/metric/definitions",
      builtInMetric("cli-review-turns", { kind: "TURN_COUNT" }, "COUNT"),
    );
    const job = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds: [callId],
      metrics: [{ id: "cli-review-turns" }],
    });
    await waitForJobEnd(stack.api, job.body.data.id);
    const reviewed = await mcj([
      "jobs",
      "review",
      job.body.data.id,
      callId,
      "cli-review-turns",
      "--value",
      "9",
      "--note",
      "recounted",
    ]);
    expect(reviewed.code, reviewed.stderr).toBe(0);
    expect(JSON.parse(reviewed.stdout)).toMatchObject({ reviewedValue: 9, reviewNote: "recounted" });
    const report = await mcj(["metrics", "agreement", "cli-review-turns"]);
    expect(JSON.parse(report.stdout)).toMatchObject({ reviewed: 1, compared: 1, agreed: 0, accuracy: 0 });
    expect((await mcj(["jobs", "review", job.body.data.id, callId, "cli-review-turns"])).code).toBe(2);
    // Later tests run jobs on every call.
    await stack.api("DELETE", `/v1/call/${callId}`);
  });

  it("creates, lists and shows metric definitions", async () => {
    const defFile = join(dir, "turns.json");
    writeFileSync(defFile, JSON.stringify(builtInMetric("cli-turns", { kind: "TURN_COUNT" }, "COUNT")));
    const created = await mcj(["metrics", "create", "--file", defFile]);
    expect(created.code, created.stderr).toBe(0);
    expect(JSON.parse(created.stdout).slug).toBe("cli-turns");
    const inline = await mcj([
      "metrics",
      "create",
      "--json",
      JSON.stringify(llmMetric("cli-sorry", "BOOLEAN", 'Did the agent say "sorry"?')),
    ]);
    expect(inline.code, inline.stderr).toBe(0);
    const listed = await mcj(["metrics", "list"]);
    expect(listed.stdout).toMatch(/cli-turns\s+cli turns\s+BUILT_IN\s+COUNT/);
    const shown = await mcj(["metrics", "show", "cli-sorry"]);
    expect(JSON.parse(shown.stdout).calculationType).toBe("LLM_JUDGE");
    await stack.api("PUT", "/v1/metric/definitions/cli-turns", { name: "Turns" });
    const versions = await mcj(["metrics", "versions", "cli-turns"]);
    expect(versions.code, versions.stderr).toBe(0);
    expect(versions.stdout).toMatch(/2\s+cli-turns\s+Turns[\s\S]*1\s+cli-turns\s+cli turns/);
    const archived = await mcj(["metrics", "archive", "cli-sorry"]);
    expect(archived.code, archived.stderr).toBe(0);
    expect(JSON.parse(archived.stdout).archivedAt).toEqual(expect.any(String));
    expect((await mcj(["metrics", "list"])).stdout).not.toContain("cli-sorry");
    expect((await mcj(["metrics", "unarchive", "cli-sorry"])).code).toBe(0);
    expect((await mcj(["metrics", "list"])).stdout).toContain("cli-sorry");
  });

  it("creates a job and watches it to completion with plain progress lines, then prints values", async () => {
    const run = await mcj(["jobs", "create", "--all-calls", "--metrics", "cli-turns,cli-sorry", "--watch"]);
    expect(run.code, run.stderr).toBe(0);
    const job = JSON.parse(run.stdout);
    expect(job).toMatchObject({ status: "COMPLETED", totalItems: 4, completedItems: 4 });
    expect(run.stderr).not.toContain("\r");
    expect(run.stderr).toMatch(new RegExp(`job ${job.id} (PENDING|PROCESSING) \\d+% \\d+/4 completed=\\d+ failed=0`));
    expect(run.stderr).toContain(`job ${job.id} COMPLETED after`);

    const csv = await mcj(["jobs", "values", job.id, "--format", "csv"]);
    expect(csv.code).toBe(0);
    const lines = csv.stdout.trim().split("\n");
    expect(lines[0]).toBe("callId,metric,version,status,value,confidence,reasoning,segment");
    expect(lines).toHaveLength(5);
    const table = await mcj(["jobs", "values", job.id]);
    expect(table.stdout).toMatch(/cli-sorry\s+SUCCESS\s+true/);
    const json = await mcj(["jobs", "values", job.id, "--format", "json", "--status", "success"]);
    expect(JSON.parse(json.stdout).map((g: { slug: string }) => g.slug)).toEqual(["cli-turns", "cli-sorry"]);

    const listed = await mcj(["jobs", "list", "--status", "completed"]);
    expect(listed.stdout).toContain(job.id);
    const shown = await mcj(["jobs", "show", job.id]);
    expect(JSON.parse(shown.stdout).id).toBe(job.id);
    const retry = await mcj(["jobs", "retry", job.id]);
    expect(retry.code).toBe(3);
    expect(retry.stderr).toContain("API answered 400");
  });

  it("exits 1 when a watched job ends CANCELED", async () => {
    // A slow judge keeps the job running until the cancel arrives, however fast the machine.
    stack.anthropic.configure({ latencyMs: 3_000 });
    const created = await mcj(["jobs", "create", "--all-calls", "--metrics", "cli-sorry"]);
    const job = JSON.parse(created.stdout);
    const canceled = await mcj(["jobs", "cancel", job.id]);
    stack.anthropic.configure({ latencyMs: 0 });
    expect(canceled.code).toBe(0);
    const watched = await mcj(["jobs", "watch", job.id]);
    expect(watched.code).toBe(1);
    expect(watched.stderr).toContain("CANCELED");
    expect(watched.stderr).toMatch(/\d+ not run of \d+/);
  });

  it("creates a job with an expiry", async () => {
    const created = await mcj(["jobs", "create", "--all-calls", "--metrics", "cli-sorry", "--expires-in", "600"]);
    expect(created.code).toBe(0);
    const job = JSON.parse(created.stdout);
    expect(Date.parse(job.expiresAt) - Date.parse(job.createdAt)).toBe(600_000);
    expect((await mcj(["jobs", "create", "--all-calls", "--metrics", "cli-sorry", "--expires-in", "5"])).code).toBe(3);
    expect((await mcj(["jobs", "create", "--all-calls", "--metrics", "cli-sorry", "--expires-in", "soon"])).code).toBe(
      2,
    );
  });

  it("exits 2 on usage errors and 3 on API errors", async () => {
    expect((await mcj(["jobs", "create", "--metrics", "x"])).code).toBe(2);
    expect((await mcj(["jobs", "frobnicate"])).code).toBe(2);
    expect((await mcj(["jobs", "list", "--bogus"])).code).toBe(2);
    expect((await mcj(["jobs", "list"], { MCJ_BASE_URL: "" })).code).toBe(2);
    const missing = await mcj(["jobs", "show", "no-such-job"]);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain("404 not_found");
    expect((await mcj(["jobs", "list"], { MCJ_API_KEY: "mcj_wrong_key_0123456789" })).code).toBe(3);
    expect((await mcj(["jobs", "list"], { MCJ_BASE_URL: "http://127.0.0.1:1" })).code).toBe(3);
  });

  it("creates API keys straight in the table (keys create)", async () => {
    const run = await mcj(["keys", "create", "--org-name", "CLI org", "--role", "member"], {
      TABLE_NAME: stack.tableName,
      DYNAMODB_ENDPOINT: inject("dynamodbEndpoint"),
    });
    expect(run.code, run.stderr).toBe(0);
    const key = JSON.parse(run.stdout);
    expect(key).toMatchObject({ role: "member" });
    const asNewOrg = await mcj(["calls", "list"], { MCJ_API_KEY: key.apiKey });
    expect(asNewOrg.code, asNewOrg.stderr).toBe(0);
    expect(asNewOrg.stdout.trim()).toBe("(none)");
  });

  it("creates, lists and revokes keys through the API with an admin key", async () => {
    const created = await mcj(["keys", "create", "--key-name", "cli reader", "--role", "read-only"]);
    expect(created.code, created.stderr).toBe(0);
    const key = JSON.parse(created.stdout);
    expect(key).toMatchObject({ name: "cli reader", role: "read-only" });
    expect(created.stderr).toContain("only its hash is kept");
    const listed = await mcj(["keys", "list"]);
    expect(listed.stdout).toContain(key.id);
    expect(listed.stdout).not.toContain(key.apiKey);
    expect((await mcj(["calls", "list"], { MCJ_API_KEY: key.apiKey })).code).toBe(0);
    const revoked = await mcj(["keys", "revoke", key.id]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(JSON.parse(revoked.stdout).revokedAt).toBeTruthy();
    expect((await mcj(["keys", "create", "--key-name", "x", "--role", "owner"])).code).toBe(2);
    const audit = await mcj(["audit", "list"]);
    expect(audit.stdout).toContain("api_key.revoked");
  });
});
