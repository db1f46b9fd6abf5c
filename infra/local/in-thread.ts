/**
 * Runs a local stand-in service (the SQS emulator, the fake Anthropic server, a counting
 * proxy) on a worker thread of its own. Everything local otherwise shares one event loop:
 * under load (the benchmark) that loop, not the code it runs, sets the pace, while in AWS
 * these services run elsewhere. The service is started by a named export of a module; its
 * methods are called through messages and return promises, its plain fields are copied once.
 */
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";

type Method = (...args: never[]) => unknown;
/** The service as seen from the caller's thread: every method answers asynchronously. */
export type InThread<T> = {
  [K in keyof T]: T[K] extends Method ? (...args: Parameters<T[K]>) => Promise<Awaited<ReturnType<T[K]>>> : T[K];
} & { stop(): Promise<void> };

interface Start {
  moduleUrl: string;
  exportName: string;
  args: unknown[];
}
type Reply = { id: number; result?: unknown; error?: string };

export async function startInThread<T extends object>(
  moduleUrl: URL,
  exportName: string,
  ...args: unknown[]
): Promise<InThread<T>> {
  const worker = new Worker(new URL(import.meta.url), {
    workerData: { moduleUrl: moduleUrl.href, exportName, args } satisfies Start,
  });
  const ready = await new Promise<{ fields: Record<string, unknown>; methods: string[] }>((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
  });
  let nextId = 0;
  const waiting = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  worker.on("message", (reply: Reply) => {
    const call = waiting.get(reply.id);
    waiting.delete(reply.id);
    if (reply.error !== undefined) call?.reject(new Error(reply.error));
    else call?.resolve(reply.result);
  });
  worker.on("error", (error) => {
    for (const call of waiting.values()) call.reject(error);
    waiting.clear();
  });
  const invoke = (method: string, methodArgs: unknown[]) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      waiting.set(id, { resolve, reject });
      worker.postMessage({ id, method, args: methodArgs });
    });
  const service: Record<string, unknown> = { ...ready.fields };
  for (const method of ready.methods) service[method] = (...methodArgs: unknown[]) => invoke(method, methodArgs);
  service.stop = async () => {
    if (ready.methods.includes("stop")) await invoke("stop", []);
    await worker.terminate();
  };
  return service as InThread<T>;
}

async function serve({ moduleUrl, exportName, args }: Start) {
  const module = (await import(moduleUrl)) as Record<string, (...startArgs: unknown[]) => Promise<object>>;
  const start = module[exportName];
  if (typeof start !== "function") throw new Error(`${moduleUrl} exports no function ${exportName}`);
  const service = (await start(...args)) as Record<string, unknown>;
  const methods = Object.keys(service).filter((key) => typeof service[key] === "function");
  const fields = Object.fromEntries(Object.entries(service).filter(([, value]) => typeof value !== "function"));
  parentPort?.on(
    "message",
    async ({ id, method, args: methodArgs }: { id: number; method: string; args: unknown[] }) => {
      try {
        const result = await (service[method] as (...a: unknown[]) => unknown)(...methodArgs);
        parentPort?.postMessage({ id, result } satisfies Reply);
      } catch (error) {
        parentPort?.postMessage({ id, error: error instanceof Error ? error.message : String(error) } satisfies Reply);
      }
    },
  );
  parentPort?.postMessage({ fields, methods });
}

if (!isMainThread && (workerData as Partial<Start> | undefined)?.exportName) {
  await serve(workerData as Start);
}
