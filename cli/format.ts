/** Text output of the CLI: tables, CSV rows and job progress. Pure functions. */
import type { Job } from "../sdk/src/index.ts";

export function table(header: string[], rows: string[][]): string {
  if (rows.length === 0) return "(none)";
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

export function csvRow(cells: string[]): string {
  return cells.map((cell) => (/[",\n\r]/.test(cell) ? `"${cell.replaceAll('"', '""')}"` : cell)).join(",");
}

export function progressBar(job: Pick<Job, "completedItems" | "failedItems" | "totalItems">, width = 30): string {
  const total = Math.max(1, job.totalItems);
  const ok = Math.round((job.completedItems / total) * width);
  const bad = Math.min(width - ok, Math.round((job.failedItems / total) * width));
  return `[${"█".repeat(ok)}${"▒".repeat(bad)}${"░".repeat(Math.max(0, width - ok - bad))}]`;
}

const duration = (seconds: number) =>
  seconds >= 3600
    ? `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, "0")}m`
    : seconds >= 60
      ? `${Math.floor(seconds / 60)}m${String(Math.round(seconds % 60)).padStart(2, "0")}s`
      : `${Math.round(seconds)}s`;

/** `PROCESSING 42% 84/200 completed=80 failed=4 rate=12.5/s eta=9s` */
export function formatProgress(
  job: Pick<Job, "status" | "completedItems" | "failedItems" | "totalItems">,
  timing: { elapsedMs: number; doneAtStart: number },
): string {
  const done = job.completedItems + job.failedItems;
  const pct = job.totalItems === 0 ? 100 : Math.floor((done / job.totalItems) * 100);
  const rate = timing.elapsedMs > 0 ? ((done - timing.doneAtStart) / timing.elapsedMs) * 1000 : 0;
  const remaining = job.totalItems - done;
  const eta = rate > 0 && remaining > 0 ? ` eta=${duration(remaining / rate)}` : "";
  return `${job.status} ${pct}% ${done}/${job.totalItems} completed=${job.completedItems} failed=${job.failedItems} rate=${rate.toFixed(1)}/s${eta}`;
}
