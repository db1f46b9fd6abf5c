/** The jobs commands: create (with the calls and metadata it names), watch, and values. */
import { readFile } from "node:fs/promises";
import type { Client, Job } from "../sdk/src/index.ts";
import { EXIT, type Io, list, positiveInt, printed, UsageError, type Values } from "./args.ts";
import { csvRow, formatProgress, progressBar, table } from "./format.ts";

function metadataOf(values: Values): Record<string, string> {
  return Object.fromEntries(
    (values.metadata ?? []).map((entry) => {
      const at = entry.indexOf("=");
      if (at < 1) throw new UsageError(`--metadata takes key=value, got "${entry}"`);
      return [entry.slice(0, at), entry.slice(at + 1)];
    }),
  );
}

export async function createJob(client: Client, values: Values, io: Io): Promise<number> {
  const metrics = list(values.metrics).map((id) => ({ id }));
  if (metrics.length === 0) throw new UsageError("jobs create needs --metrics slug,slug,…");
  const callIds = await resolveCalls(client, values);
  const metadata = metadataOf(values);
  const expiresIn = values["expires-in"];
  const job = await client.jobs.create({
    callIds,
    metrics,
    ...(Object.keys(metadata).length > 0 ? { metadata } : {}),
    ...(expiresIn === undefined ? {} : { expiresInSeconds: positiveInt(expiresIn, "expires-in", 0) }),
  });
  return values.watch ? watch(client, job, io) : printed(io, job);
}

export const percent = (job: Job) =>
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

export async function watch(client: Client, created: Job, io: Io): Promise<number> {
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
    `job ${job.id} ${job.status} after ${seconds}s: ${job.completedItems} completed, ${job.failedItems} failed` +
      `${job.notRunItems ? `, ${job.notRunItems} not run` : ""} of ${job.totalItems}` +
      `${job.errorMessage ? ` (${job.errorMessage})` : ""}\n`,
  );
  io.stdout.write(`${JSON.stringify(job, null, 2)}\n`);
  return job.status === "COMPLETED" ? EXIT.ok : EXIT.failed;
}

export async function jobValues(client: Client, jobId: string, values: Values, io: Io): Promise<number> {
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
