/** What every command shares: exit codes, parsed options, the I/O it writes to, usage errors. */
import type { parseArgs } from "node:util";
import { table } from "./format.ts";

export const EXIT = { ok: 0, failed: 1, usage: 2, api: 3 } as const;

export class UsageError extends Error {}

export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  env: Record<string, string | undefined>;
}

export const options = {
  "base-url": { type: "string" },
  "api-url": { type: "string" },
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
  "webhook-url": { type: "string" },
  "external-id": { type: "string" },
  value: { type: "string" },
  note: { type: "string" },
  "webhook-port": { type: "string" },
  "timeout-seconds": { type: "string" },
  "expires-in": { type: "string" },
  provider: { type: "string" },
  name: { type: "string" },
  "grace-seconds": { type: "string" },
} as const;

export type Values = ReturnType<typeof parseArgs<{ options: typeof options; allowPositionals: true }>>["values"];

export const list = (value: string | undefined) =>
  (value ?? "")
    .split(/[,\s]+/)
    .map((item) => item.trim())
    .filter(Boolean);

export function positiveInt(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1) throw new UsageError(`--${name} must be a positive integer`);
  return number;
}

export function need(value: string | undefined, what: string): string {
  if (!value) throw new UsageError(`Missing ${what}`);
  return value;
}

export const printJson = (io: Io, value: unknown) => io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
export const printed = (io: Io, value: unknown) => {
  printJson(io, value);
  return EXIT.ok;
};
export const printTable = (io: Io, headers: string[], rows: string[][]) => {
  io.stdout.write(`${table(headers, rows)}\n`);
  return EXIT.ok;
};
