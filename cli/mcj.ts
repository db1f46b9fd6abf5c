#!/usr/bin/env node
/**
 * mcj — the command line of the metric collection service, built on the SDK.
 * Run `mcj help` (or `npm run mcj -- help` inside the repo) for the commands.
 *
 * Exit codes: 0 ok · 1 the work ended badly (job FAILED/CANCELED/EXPIRED, rejected import lines)
 *             2 usage error · 3 API or network error
 */
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { ApiConnectionError, ApiError, Client } from "../sdk/src/index.ts";
import { platformSignatureHeaders } from "../shared/integrations/signatures.ts";
import { type IntegrationProvider, integrationProviders } from "../shared/schemas/integration.ts";
import { isRole, roles } from "../shared/schemas/role.ts";
import { EXIT, type Io, need, options, positiveInt, printed, printTable, UsageError, type Values } from "./args.ts";
import { importCalls } from "./calls.ts";
import { createJob, jobValues, percent, watch } from "./jobs.ts";
import { keys } from "./keys.ts";
import { smoke } from "./smoke.ts";

const HELP = `mcj — metric collection service CLI

Usage: mcj <command> [options]

  calls import <file.jsonl> [--concurrency 8]   store one call per line; rejects reported with line numbers
  calls list [--limit 20] [--external-id ID]   newest first, or the call stored with your id
  calls delete <callId>                        the call, its transcript and its values in every job
  metrics create (--file def.json | --json '{...}')
  metrics list
  metrics show <idOrSlug>
  metrics versions <idOrSlug>                  every version, newest first
  metrics agreement <idOrSlug>                 how often the judge matches reviewed values
  metrics archive <idOrSlug> | metrics unarchive <idOrSlug>   new jobs refuse archived definitions
  jobs create (--calls id,id,… | --calls @ids.txt | --all-calls) --metrics slug,slug,… [--metadata k=v]… [--expires-in seconds] [--watch]
  jobs list [--status PROCESSING] [--limit 20]
  jobs show <jobId>
  jobs cancel <jobId>
  jobs retry <jobId> [--watch]
  jobs watch <jobId>
  jobs review <jobId> <callId> <metric> --value JSON [--note TEXT]   confirm or correct a value
  jobs values <jobId> [--format table|json|csv] [--status success|all (default all)]
  smoke [--webhook-url URL [--webhook-port 8787]] [--timeout-seconds 300]
      after a deploy: one call, a job with a built-in and an LLM metric, its values, and the
      signed webhook when URL forwards to this machine's port; reruns reuse the call and metrics
  integrations create --provider vapi|retell|elevenlabs --name NAME   the secret from env MCJ_INTEGRATION_SECRET
      (kept out of shell history); prints the webhook path to give the platform
  integrations list | integrations show <id> | integrations delete <id>
  integrations replay <id> --file payload.json   post a saved platform payload, signed with MCJ_INTEGRATION_SECRET
      as the platform signs it, to the integration's webhook URL (a local try of an integration)
  integrations rotate <id> [--grace-seconds 3600]   a new secret from MCJ_INTEGRATION_SECRET; the old one
      still verifies for the grace period
  keys create --key-name NAME [--role admin|member|read-only]   with an admin key; prints the secret once
  keys list
  audit list [--limit 20]                      who changed definitions, policies, backfills and keys, newest first
  keys revoke <keyId>
  keys create (--org-name NAME | --org-id ID) [--role admin|member|read-only] [--key-name NAME]
      an organization's first key: talks to DynamoDB directly, needs TABLE_NAME (+ DYNAMODB_ENDPOINT
      for the local stack, or AWS credentials)

Options: --base-url URL (or --api-url, the stack's ApiUrl output; env MCJ_BASE_URL), --api-key KEY (env MCJ_API_KEY), -h/--help

Exit codes: 0 ok, 1 job FAILED/CANCELED/EXPIRED or import lines rejected, 2 usage error, 3 API/network error`;

/** A platform's secret comes from the environment, never from the command line (shell history, `ps`). */
function integrationSecret(io: Io): string {
  const secret = io.env.MCJ_INTEGRATION_SECRET;
  if (!secret) throw new UsageError("Set MCJ_INTEGRATION_SECRET to the secret the platform signs its webhooks with");
  return secret;
}

interface CommandContext {
  client: Client;
  values: Values;
  /** Positionals after the group and command. */
  rest: string[];
  io: Io;
}

async function readDefinition(values: Values): Promise<unknown> {
  const text = values.json ?? (values.file ? await readFile(values.file, "utf8") : undefined);
  if (!text) throw new UsageError("metrics create needs --file def.json or --json '{...}'");
  try {
    return JSON.parse(text);
  } catch {
    throw new UsageError("The metric definition is not valid JSON");
  }
}

/** Every API command, by "group command". */
const commands: Record<string, (context: CommandContext) => Promise<number>> = {
  "calls import": ({ client, values, rest, io }) =>
    importCalls(client, need(rest[0], "<file.jsonl>"), positiveInt(values.concurrency, "concurrency", 8), io),
  "calls list": async ({ client, values, io }) => {
    const page = await client.calls.list({
      limit: positiveInt(values.limit, "limit", 20),
      externalId: values["external-id"],
    });
    return printTable(
      io,
      ["id", "agentId", "startedAt", "segments", "externalId"],
      page.data.map((c) => [c.id, c.agentId, c.startedAt, String(c.segmentCount), c.externalId ?? ""]),
    );
  },
  "calls delete": async ({ client, rest, io }) => printed(io, await client.calls.delete(need(rest[0], "<callId>"))),
  "metrics create": async ({ client, values, io }) =>
    printed(io, await client.metrics.create((await readDefinition(values)) as never)),
  "metrics archive": async ({ client, rest, io }) =>
    printed(io, await client.metrics.archive(need(rest[0], "<idOrSlug>"))),
  "metrics unarchive": async ({ client, rest, io }) =>
    printed(io, await client.metrics.unarchive(need(rest[0], "<idOrSlug>"))),
  "metrics agreement": async ({ client, rest, io }) =>
    printed(io, await client.metrics.agreement(need(rest[0], "<idOrSlug>"))),
  "jobs review": async ({ client, rest, values, io }) => {
    const text = need(values.value, "--value");
    let reviewedValue: unknown;
    try {
      reviewedValue = JSON.parse(text);
    } catch {
      reviewedValue = text; // A bare word is a label or a text value.
    }
    const [jobId, callId, metric] = [need(rest[0], "<jobId>"), need(rest[1], "<callId>"), need(rest[2], "<metric>")];
    const body = { reviewedValue, ...(values.note ? { note: values.note } : {}) } as never;
    return printed(io, await client.jobs.review(jobId, callId, metric, body));
  },
  "metrics versions": async ({ client, rest, io }) => {
    const rows: string[][] = [];
    for await (const m of client.metrics.versions(need(rest[0], "<idOrSlug>"))) {
      rows.push([String(m.version), m.slug, m.name, m.updatedAt]);
    }
    return printTable(io, ["version", "slug", "name", "savedAt"], rows);
  },
  "metrics list": async ({ client, io }) => {
    const rows: string[][] = [];
    for await (const m of client.metrics.iterate({ limit: 100 })) {
      rows.push([m.slug, m.name, m.calculationType, m.outputType, String(m.version), m.id]);
    }
    return printTable(io, ["slug", "name", "calculation", "output", "version", "id"], rows);
  },
  "metrics show": async ({ client, rest, io }) => printed(io, await client.metrics.get(need(rest[0], "<idOrSlug>"))),
  "jobs create": ({ client, values, io }) => createJob(client, values, io),
  "jobs list": async ({ client, values, io }) => {
    const status = values.status?.toUpperCase() as "PENDING" | undefined;
    const page = await client.jobs.list({ limit: positiveInt(values.limit, "limit", 20), status });
    return printTable(
      io,
      ["id", "status", "progress", "failed", "total", "createdAt"],
      page.data.map((j) => [
        j.id,
        j.status,
        `${percent(j)}%`,
        String(j.failedItems),
        String(j.totalItems),
        j.createdAt,
      ]),
    );
  },
  "jobs show": async ({ client, rest, io }) => printed(io, await client.jobs.get(need(rest[0], "<jobId>"))),
  "jobs watch": async ({ client, rest, io }) => watch(client, await client.jobs.get(need(rest[0], "<jobId>")), io),
  "jobs cancel": async ({ client, rest, io }) => printed(io, await client.jobs.cancel(need(rest[0], "<jobId>"))),
  "jobs retry": async ({ client, values, rest, io }) => {
    const job = await client.jobs.retry(need(rest[0], "<jobId>"));
    return values.watch ? watch(client, job, io) : printed(io, job);
  },
  "integrations create": async ({ client, values, io }) => {
    const provider = need(values.provider, "--provider");
    if (!integrationProviders.includes(provider as IntegrationProvider)) {
      throw new UsageError(`--provider must be one of ${integrationProviders.join(", ")}`);
    }
    const created = await client.integrations.create({
      provider: provider as IntegrationProvider,
      name: need(values.name, "--name"),
      secret: integrationSecret(io),
    });
    io.stderr.write(`Point the platform's webhook at <your API URL>${created.webhookUrl}\n`);
    return printed(io, created);
  },
  "integrations list": async ({ client, io }) => {
    const rows: string[][] = [];
    for await (const integration of client.integrations.iterate({ limit: 100 })) {
      rows.push([integration.id, integration.provider, integration.name, integration.webhookUrl]);
    }
    return printTable(io, ["id", "provider", "name", "webhookUrl"], rows);
  },
  "integrations show": async ({ client, rest, io }) =>
    printed(io, await client.integrations.get(need(rest[0], "<id>"))),
  "integrations rotate": async ({ client, values, rest, io }) =>
    printed(
      io,
      await client.integrations.update(need(rest[0], "<id>"), {
        secret: integrationSecret(io),
        ...(values["grace-seconds"] === undefined
          ? {}
          : { secretGraceSeconds: positiveInt(values["grace-seconds"], "grace-seconds", 3600) }),
      }),
    ),
  "integrations replay": async ({ client, values, rest, io }) => {
    // A saved payload, signed as the platform signs it, posted to the integration's webhook URL.
    const integration = await client.integrations.get(need(rest[0], "<id>"));
    const rawBody = await readFile(need(values.file, "--file"), "utf8");
    const headers = platformSignatureHeaders(
      integration.provider,
      rawBody,
      integrationSecret(io),
      integration.vapiAuth,
    );
    const response = await fetch(`${client.baseURL}${integration.webhookUrl}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: rawBody,
    });
    const answer = await response.text();
    io.stdout.write(`${response.status} ${answer}\n`);
    return response.ok ? EXIT.ok : EXIT.api;
  },
  "integrations delete": async ({ client, rest, io }) =>
    printed(io, await client.integrations.delete(need(rest[0], "<id>"))),
  "keys create": async ({ client, values, io }) => {
    const role = values.role ?? "member";
    if (!isRole(role)) throw new UsageError(`--role must be one of ${roles.join(", ")}`);
    const created = await client.apiKeys.create({ name: need(values["key-name"], "--key-name"), role });
    io.stderr.write("Store the key now: only its hash is kept.\n");
    return printed(io, created);
  },
  "keys list": async ({ client, io }) => {
    const rows: string[][] = [];
    for await (const key of client.apiKeys.iterate({ limit: 100 })) {
      rows.push([key.id, key.name, key.role, key.createdAt, key.revokedAt ?? ""]);
    }
    return printTable(io, ["id", "name", "role", "createdAt", "revokedAt"], rows);
  },
  "audit list": async ({ client, values, io }) => {
    const page = await client.auditEvents.list({ limit: positiveInt(values.limit, "limit", 20) });
    return printTable(
      io,
      ["at", "action", "resourceId", "keyId", "role"],
      page.data.map((e) => [e.at, e.action, e.resourceId ?? "", e.keyId, e.role]),
    );
  },
  "keys revoke": async ({ client, rest, io }) => printed(io, await client.apiKeys.revoke(need(rest[0], "<keyId>"))),
  "jobs values": ({ client, values, rest, io }) => jobValues(client, need(rest[0], "<jobId>"), values, io),
  smoke: ({ client, values, io }) =>
    smoke(
      client,
      {
        webhookUrl: values["webhook-url"],
        webhookPort: positiveInt(values["webhook-port"], "webhook-port", 8787),
        timeoutMs: positiveInt(values["timeout-seconds"], "timeout-seconds", 300) * 1000,
      },
      io,
    ),
};

function clientOf(values: Values, io: Io): Client {
  const baseURL = values["base-url"] ?? values["api-url"] ?? io.env.MCJ_BASE_URL;
  const apiKey = values["api-key"] ?? io.env.MCJ_API_KEY;
  if (!baseURL) throw new UsageError("Set --base-url or MCJ_BASE_URL (e.g. http://127.0.0.1:3000)");
  if (!apiKey) throw new UsageError("Set --api-key or MCJ_API_KEY");
  return new Client({ baseURL, apiKey });
}

/** The exit code and message for an error a command ended with. */
function reportError(error: unknown, io: Io): number {
  if (error instanceof UsageError) {
    io.stderr.write(`error: ${error.message}\n\nRun "mcj help" for usage.\n`);
    return EXIT.usage;
  }
  if (error instanceof ApiError) {
    const details = error.details === undefined ? "" : `\n${JSON.stringify(error.details, null, 2)}`;
    io.stderr.write(`error: API answered ${error.status} ${error.code}: ${error.message}${details}\n`);
    return EXIT.api;
  }
  if (error instanceof ApiConnectionError) {
    io.stderr.write(`error: ${error.message}\n`);
    return EXIT.api;
  }
  throw error;
}

export async function main(argv: string[], io: Io): Promise<number> {
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (error) {
    io.stderr.write(`${(error as Error).message}\n\n${HELP}\n`);
    return EXIT.usage;
  }
  const { values, positionals } = parsed;
  const [group, command, ...rest] = positionals;
  if (values.help || !group || group === "help") {
    io.stdout.write(`${HELP}\n`);
    return group || values.help ? EXIT.ok : EXIT.usage;
  }
  try {
    // An organization's first key cannot come from the API: it is written to the table.
    if (group === "keys" && (values["org-name"] || values["org-id"])) return await keys(command, values, io);
    const key = `${group} ${command ?? ""}`.trim();
    const run = commands[key];
    if (!run) throw new UsageError(`Unknown command "${key}"`);
    return await run({ client: clientOf(values, io), values, rest, io });
  } catch (error) {
    return reportError(error, io);
  }
}

if (import.meta.main) {
  const code = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env });
  process.exitCode = code;
}
