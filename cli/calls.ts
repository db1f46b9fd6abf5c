/** `mcj calls import`: one call per JSON line, several in flight, rejects reported with line numbers. */
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { ApiError, type Client } from "../sdk/src/index.ts";
import { EXIT, type Io, UsageError } from "./args.ts";

export async function importCalls(client: Client, file: string, concurrency: number, io: Io): Promise<number> {
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
