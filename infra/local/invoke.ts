/**
 * What every local invocation shares: lazy handler loading (a cold start per function),
 * a fake Lambda context and Lambda's timeout.
 */
import { randomUUID } from "node:crypto";
import { dirname, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Context } from "aws-lambda";
import { type FunctionEntry, memoryOf, timeoutOf } from "../../shared/wiring.ts";
import { runAs } from "./access-guard.ts";

// biome-ignore lint/suspicious/noExplicitAny: handlers of every trigger type go through here.
export type LambdaHandler = (event: any, context: any) => Promise<any>;

export interface RuntimeLogger {
  info(msg: string, extra?: object): void;
  error(msg: string, extra?: object): void;
}

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

export const LOCAL_ACCOUNT_ID = "000000000000";

class LambdaTimeoutError extends Error {
  constructor(functionName: string, seconds: number) {
    super(`${functionName} timed out after ${seconds} seconds`);
    this.name = "LambdaTimeoutError";
  }
}

/** Loads each entry module once, on first use, like a cold start; overrides win. */
export function createHandlerResolver(overrides: Record<string, LambdaHandler> = {}) {
  const loaded = new Map<string, Promise<LambdaHandler>>();
  return (entry: FunctionEntry): Promise<LambdaHandler> => {
    const override = overrides[entry.id];
    if (override) return Promise.resolve(override);
    let handler = loaded.get(entry.entry);
    if (!handler) {
      handler = importHandler(entry);
      // A failed import is retried on the next invocation, as a new cold start would.
      handler.catch(() => loaded.delete(entry.entry));
      loaded.set(entry.entry, handler);
    }
    return handler;
  };
}

async function importHandler(entry: FunctionEntry): Promise<LambdaHandler> {
  const module = await import(pathToFileURL(resolve(repoRoot, entry.entry)).href);
  if (typeof module.handler !== "function") throw new Error(`${entry.entry} does not export a handler function`);
  return module.handler as LambdaHandler;
}

export function createLambdaContext(entry: FunctionEntry, region: string, deadline: number): Context {
  const awsRequestId = randomUUID();
  const day = new Date().toISOString().slice(0, 10).replaceAll("-", "/");
  const unsupported = () => {
    throw new Error("Callback-style context methods are not supported; return a promise");
  };
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: entry.id,
    functionVersion: "$LATEST",
    invokedFunctionArn: `arn:aws:lambda:${region}:${LOCAL_ACCOUNT_ID}:function:${entry.id}`,
    memoryLimitInMB: String(memoryOf(entry)),
    awsRequestId,
    logGroupName: `/aws/lambda/${entry.id}`,
    logStreamName: `${day}/[$LATEST]${awsRequestId.replaceAll("-", "")}`,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: unsupported,
    fail: unsupported,
    succeed: unsupported,
  };
}

/**
 * Runs the handler like Lambda: with a context and a deadline. On timeout the promise
 * rejects with LambdaTimeoutError; the handler itself cannot be killed and runs on, which
 * is no worse than what AWS allows (a timed-out invocation may have done some of its work).
 */
export async function invokeHandler(
  resolveHandler: (entry: FunctionEntry) => Promise<LambdaHandler>,
  entry: FunctionEntry,
  event: unknown,
  region: string,
): Promise<unknown> {
  const timeoutSeconds = timeoutOf(entry);
  const deadline = Date.now() + timeoutSeconds * 1000;
  const handler = await resolveHandler(entry);
  const context = createLambdaContext(entry, region, deadline);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new LambdaTimeoutError(entry.id, timeoutSeconds)), timeoutSeconds * 1000);
  });
  try {
    // As the function: its requests are checked against its wiring access (access-guard.ts).
    return await Promise.race([runAs(entry, () => Promise.resolve().then(() => handler(event, context))), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves after `ms`, or at once when the signal aborts (never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolveSleep) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolveSleep();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

export function errorDetails(error: unknown): object {
  return error instanceof Error
    ? { error: error.message, name: error.name, stack: error.stack }
    : { error: String(error) };
}
