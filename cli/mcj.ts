#!/usr/bin/env node
/**
 * mcj — the command line of the metric collection service, built on the SDK.
 * Run `mcj help` (or `npm run mcj -- help` inside the repo) for the commands.
 *
 * Exit codes: 0 ok · 1 the work ended badly (job FAILED/CANCELED, rejected import lines)
 *             2 usage error · 3 API or network error
 */
import { createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { ApiConnectionError, ApiError, Client, type Job } from "../sdk/src/index.ts";
import { csvRow, formatProgress, progressBar, table } from "./format.ts";

export const EXIT = { ok: 0, failed: 1, usage: 2, api: 3 } as const;

const HELP = `mcj — metric collection service CLI

Usage: mcj <command> [options]

  calls import <file.jsonl> [--concurrency 8]   store one call per line; rejects reported with line numbers
  calls list [--limit 20]
  metrics create (--file def.json | --json '{...}')
  metrics list
  metrics show <idOrSlug>
  jobs create (--calls id,id,… | --calls @ids.txt | --all-calls) --metrics slug,slug,… [--metadata k=v]… [--watch]
  jobs list [--status PROCESSING] [--limit 20]
  jobs show <jobId>
  jobs cancel <jobId>
  jobs retry <jobId> [--watch]
  jobs watch <jobId>
  jobs values <jobId> [--format table|json|csv] [--status success|all]
  keys create (--org-name NAME | --org-id ID) [--role admin|member] [--key-name NAME]
      talks to DynamoDB directly: needs TABLE_NAME (+ DYNAMODB_ENDPOINT for the local stack, or AWS credentials)

Options: --base-url URL (env MCJ_BASE_URL), --api-key KEY (env MCJ_API_KEY), -h/--help

Exit codes: 0 ok, 1 job FAILED/CANCELED or import lines rejected, 2 usage error, 3 API/network error`;

class UsageError extends Error {}

interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  env: Record<string, string | undefined>;
}

const options = {
  "base-url": { type: "string" },
  "api-key": { type: "string" },
  help: { type: "boolean", short: "h" },
  limit: { type: "string" },
  status: { type: "string" },
  format: { type: "string" },
  file: { type: "string" },
  json: { type: "string" },
  calls: { type: "string" },
  "all-calls": { type: "boolean" },
  metrics: { type: "string" },
  metadata: { type: "string", multiple: true },
  watch: { type: "boolean", short: "w" },
  concurrency: { type: "string" },
  "org-name": { type: "string" },
  "org-id": { type: "string" },
  role: { type: "string" },
  "key-name": { type: "string" },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof options; allowPositionals: true }>>["values"];

const list = (value: string | undefined) =>
  (value ?? "")
    .split(/[,\s]+/)
    .map((item) => item.trim())
    .filter(Boolean);

function positiveInt(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1) throw new UsageError(`--${name} must be a positive integer`);
  return number;
}

function need(value: string | undefined, what: string): string {
  if (!value) throw new UsageError(`Missing ${what}`);
  return value;
}

interface CommandContext {
  client: Client;
  values: Values;
  /** Positionals after the group and command. */
  rest: string[];
  io: Io;
}

const printJson = (io: Io, value: unknown) => io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
const printed = (io: Io, value: unknown) => {
  printJson(io, value);
  return EXIT.ok;
};
const printTable = (io: Io, headers: string[], rows: string[][]) => {
  io.stdout.write(`${table(headers, rows)}\n`);
  return EXIT.ok;
};

async function readDefinition(values: Values): Promise<unknown> {
  const text = values.json ?? (values.file ? await readFile(values.file, "utf8") : undefined);
  if (!text) throw new UsageError("metrics create needs --file def.json or --json '{...}'");
  try {
    return JSON.parse(text);
  } catch {
    throw new UsageError("The metric definition is not valid JSON");
  }
}

function metadataOf(values: Values): Record<string, string> {
  return Object.fromEntries(
    (values.metadata ?? []).map((entry) => {
      const at = entry.indexOf("=");
      if (at < 1) throw new UsageError(`--metadata takes key=value, got "${entry}"`);
      return [entry.slice(0, at), entry.slice(at + 1)];
    }),
  );
}

async function createJob({ client, values, io }: CommandContext): Promise<number> {
  const metrics = list(values.metrics).map((id) => ({ id }));
  if (metrics.length === 0) throw new UsageError("jobs create needs --metrics slug,slug,…");
  const callIds = await resolveCalls(client, values);
  const metadata = metadataOf(values);
  const job = await client.jobs.create({ callIds, metrics, ...(Object.keys(metadata).length > 0 ? { metadata } : {}) });
  return values.watch ? watch(client, job, io) : printed(io, job);
}

/** Every API command, by "group command". */
const commands: Record<string, (context: CommandContext) => Promise<number>> = {
  "calls import": ({ client, values, rest, io }) =>
    importCalls(client, need(rest[0], "<file.jsonl>"), positiveInt(values.concurrency, "concurrency", 8), io),
  "calls list": async ({ client, values, io }) => {
    const page = await client.calls.list({ limit: positiveInt(values.limit, "limit", 20) });
    return printTable(
      io,
      ["id", "agentId", "startedAt", "segments", "externalId"],
      page.data.map((c) => [c.id, c.agentId, c.startedAt, String(c.segmentCount), c.externalId ?? ""]),
    );
  },
  "metrics create": async ({ client, values, io }) =>
    printed(io, await client.metrics.create((await readDefinition(values)) as never)),
  "metrics list": async ({ client, io }) => {
    const rows: string[][] = [];
    for await (const m of client.metrics.iterate({ limit: 100 })) {
      rows.push([m.slug, m.name, m.calculationType, m.outputType, String(m.version), m.id]);
    }
    return printTable(io, ["slug", "name", "calculation", "output", "version", "id"], rows);
  },
  "metrics show": async ({ client, rest, io }) => printed(io, await client.metrics.get(need(rest[0], "<idOrSlug>"))),
  "jobs create": createJob,
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
  "jobs values": ({ client, values, rest, io }) => jobValues(client, need(rest[0], "<jobId>"), values, io),
};

function clientOf(values: Values, io: Io): Client {
  const baseURL = values["base-url"] ?? io.env.MCJ_BASE_URL;
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
    if (group === "keys") return await keys(command, values, io);
    const key = `${group} ${command ?? ""}`.trim();
    const run = commands[key];
    if (!run) throw new UsageError(`Unknown command "${key}"`);
    return await run({ client: clientOf(values, io), values, rest, io });
  } catch (error) {
    return reportError(error, io);
  }
}

const percent = (job: Job) =>
  job.totalItems === 0 ? 100 : Math.floor(((job.completedItems + job.failedItems) / job.totalItems) * 100);

async function resolveCalls(client: Client, values: Values): Promise<string[]> {
  if (values["all-calls"]) {
    const ids: string[] = [];
    for await (const call of client.calls.iterate({ limit: 100 })) ids.push(call.id);
    if (ids.length === 0) throw new UsageError("--all-calls: there are no calls");
    return ids;
  }
  const spec = values.calls;
  if (!spec) throw new UsageError("jobs create needs --calls id,id,… (or @file with one id per line, or --all-calls)");
  const ids = spec.startsWith("@") ? list(await readFile(spec.slice(1), "utf8")) : list(spec);
  if (ids.length === 0) throw new UsageError("--calls names no call ids");
  return ids;
}

async function watch(client: Client, created: Job, io: Io): Promise<number> {
  const tty = Boolean(io.stderr.isTTY);
  const started = Date.now();
  const firstDone = created.completedItems + created.failedItems;
  let lastProgress = "";
  const job = await client.jobs.wait(created.id, {
    intervalMs: 300,
    maxIntervalMs: 2_000,
    onProgress: (current) => {
      const line = formatProgress(current, { elapsedMs: Date.now() - started, doneAtStart: firstDone });
      const progress = `${current.status}/${current.completedItems}/${current.failedItems}`;
      if (tty) {
        const width = Math.max(10, Math.min(40, (io.stderr.columns ?? 80) - 70));
        io.stderr.write(`\r\x1b[2K${progressBar(current, width)} ${line}`);
      } else if (progress !== lastProgress) {
        io.stderr.write(`job ${current.id} ${line}\n`);
      }
      lastProgress = progress;
    },
  });
  if (tty) io.stderr.write("\n");
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  io.stderr.write(
    `job ${job.id} ${job.status} after ${seconds}s: ${job.completedItems} completed, ${job.failedItems} failed of ${job.totalItems}` +
      `${job.errorMessage ? ` (${job.errorMessage})` : ""}\n`,
  );
  io.stdout.write(`${JSON.stringify(job, null, 2)}\n`);
  return job.status === "COMPLETED" ? EXIT.ok : EXIT.failed;
}

async function importCalls(client: Client, file: string, concurrency: number, io: Io): Promise<number> {
  const stream = createReadStream(file, { encoding: "utf8" });
  const opened = new Promise<void>((resolve, reject) => {
    stream.once("open", () => resolve());
    stream.once("error", reject);
  });
  try {
    await opened;
  } catch (error) {
    throw new UsageError(`Cannot read ${file}: ${(error as Error).message}`);
  }
  const lines = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
  const inFlight = new Set<Promise<void>>();
  let lineNumber = 0;
  let imported = 0;
  const rejects: { line: number; reason: string }[] = [];
  const reject = (line: number, reason: string) => {
    rejects.push({ line, reason });
    io.stderr.write(`line ${line}: rejected: ${reason}\n`);
  };
  let fatal: unknown;
  for await (const text of lines) {
    lineNumber++;
    if (fatal) break;
    if (text.trim() === "") continue;
    const line = lineNumber;
    let call: unknown;
    try {
      call = JSON.parse(text);
    } catch (error) {
      reject(line, `not valid JSON (${(error as Error).message})`);
      continue;
    }
    const task = client.calls
      .create(call as never)
      .then(() => {
        imported++;
      })
      .catch((error: unknown) => {
        if (error instanceof ApiError && error.status < 500 && error.status !== 401 && error.status !== 403) {
          const fields = Array.isArray(error.details)
            ? (error.details as { field?: string; message?: string }[])
                .map((d) => `${d.field}: ${d.message}`)
                .join("; ")
            : "";
          reject(line, `${error.status} ${fields || error.message}`);
        } else {
          fatal ??= error;
        }
      })
      .finally(() => inFlight.delete(task));
    inFlight.add(task);
    if (inFlight.size >= concurrency) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  if (fatal) throw fatal;
  io.stdout.write(`Imported ${imported} calls, rejected ${rejects.length} of ${imported + rejects.length} lines\n`);
  return rejects.length > 0 ? EXIT.failed : EXIT.ok;
}

async function jobValues(client: Client, jobId: string, values: Values, io: Io): Promise<number> {
  const format = values.format ?? "table";
  if (!["table", "json", "csv"].includes(format)) throw new UsageError("--format must be table, json or csv");
  const status = (values.status ?? "all") as "success" | "all";
  if (!["success", "all"].includes(status)) throw new UsageError("--status must be success or all");
  const groups = new Map<
    string,
    Awaited<ReturnType<Client["jobs"]["values"]>> extends AsyncGenerator<infer G> ? G : never
  >();
  for await (const group of client.jobs.values(jobId, { status, limit: 1000 })) {
    const known = groups.get(group.metricDefinitionId);
    if (known) known.values.push(...group.values);
    else groups.set(group.metricDefinitionId, { ...group, values: [...group.values] });
  }
  const rows = [...groups.values()].flatMap((group) =>
    group.values.map((v) => ({
      callId: v.callId,
      metric: group.slug,
      version: v.metricVersion,
      status: v.captureStatus,
      value: v.value === undefined ? "" : Array.isArray(v.value) ? v.value.join("|") : String(v.value),
      confidence: v.confidence === undefined ? "" : String(v.confidence),
      reasoning: v.valueReasoning ?? v.errorMessage ?? "",
      segment: (v.segment ?? v.fromSegment)?.text ?? "",
    })),
  );
  if (format === "json") {
    io.stdout.write(`${JSON.stringify([...groups.values()], null, 2)}\n`);
  } else if (format === "csv") {
    const header = ["callId", "metric", "version", "status", "value", "confidence", "reasoning", "segment"];
    io.stdout.write(`${csvRow(header)}\n`);
    for (const row of rows) io.stdout.write(`${csvRow(header.map((h) => String(row[h as keyof typeof row])))}\n`);
  } else {
    const clip = (text: string, n: number) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);
    io.stdout.write(
      `${table(
        ["call", "metric", "status", "value", "conf", "reasoning"],
        rows.map((r) => [
          r.callId.slice(0, 8),
          r.metric,
          r.status,
          clip(r.value, 24),
          r.confidence,
          clip(r.reasoning, 60),
        ]),
      )}\n`,
    );
  }
  return EXIT.ok;
}

async function keys(command: string | undefined, values: Values, io: Io): Promise<number> {
  if (command !== "create") throw new UsageError(`Unknown command "keys ${command ?? ""}"`);
  const role = values.role ?? "admin";
  if (role !== "admin" && role !== "member") throw new UsageError("--role must be admin or member");
  if (!io.env.TABLE_NAME)
    throw new UsageError("keys create writes to DynamoDB: set TABLE_NAME (and DYNAMODB_ENDPOINT locally)");
  if (!values["org-id"] && !values["org-name"]) throw new UsageError("Give --org-name (new organization) or --org-id");
  if (io.env.DYNAMODB_ENDPOINT) {
    // DynamoDB Local accepts any credentials, but the AWS SDK insists on having some.
    process.env.AWS_ACCESS_KEY_ID ??= "local";
    process.env.AWS_SECRET_ACCESS_KEY ??= "local";
    process.env.AWS_REGION ??= "us-east-1";
  }
  // Loaded only here: the rest of the CLI needs nothing but the SDK.
  const { createApiKey, createOrganization } = await import("../shared/store/organizations.ts");
  const orgId = values["org-id"] ?? (await createOrganization(values["org-name"] as string)).orgId;
  const { apiKey, keyId } = await createApiKey(orgId, { role, name: values["key-name"] ?? "cli" });
  io.stdout.write(`${JSON.stringify({ orgId, keyId, role, apiKey }, null, 2)}\n`);
  io.stderr.write("Store the key now: only its hash is kept.\n");
  return EXIT.ok;
}

if (import.meta.main) {
  const code = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env });
  process.exitCode = code;
}
