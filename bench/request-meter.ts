/**
 * A counting HTTP proxy in front of a local AWS engine (DynamoDB Local or the SQS emulator).
 * Everything the service and the local event sources send passes through it unchanged,
 * except that DynamoDB requests ask for `ReturnConsumedCapacity: TOTAL`, so the benchmark
 * can count requests per API action and capacity units per request without touching
 * production code.
 */
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface MeterCounts {
  /** Requests per action, e.g. `SendMessageBatch`, `TransactWriteItems`. */
  requests: Record<string, number>;
  /** DynamoDB read and write capacity units as AWS bills them (transactions at 2×, see `transactionWriteUnits`). */
  readUnits: number;
  writeUnits: number;
  /**
   * Write units by what was written: `<action> <item kind>` for transactions (the entity of a
   * put item, the key type of an updated or deleted one, e.g. `Update JOB`), else the action.
   */
  writeUnitsByKind: Record<string, number>;
  /** Messages sent to queues whose URL contains each key (SendMessage + SendMessageBatch entries). */
  messagesSentByQueue: Record<string, number>;
  /** Milliseconds the engine took per action, summed over requests (where the engine's time goes). */
  engineMs: Record<string, number>;
}

const CAPACITY_ACTIONS = new Set([
  "GetItem",
  "PutItem",
  "UpdateItem",
  "DeleteItem",
  "BatchGetItem",
  "BatchWriteItem",
  "Query",
  "Scan",
  "TransactWriteItems",
  "TransactGetItems",
]);
const WRITE_ACTIONS = new Set(["PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"]);
/** DynamoDB Local reports transactional items at the standard rate; AWS bills them twice. */
const TRANSACTION_FACTOR = 2;

const emptyCounts = (): MeterCounts => ({
  requests: {},
  readUnits: 0,
  writeUnits: 0,
  writeUnitsByKind: {},
  messagesSentByQueue: {},
  engineMs: {},
});

/** DynamoDB's size of an attribute value (AWS's item-size rules, close enough for billing). */
function valueSize(value: Record<string, unknown>): number {
  const [type, content] = Object.entries(value)[0] ?? ["NULL", true];
  switch (type) {
    case "S":
      return Buffer.byteLength(String(content));
    case "N":
      return Math.ceil(String(content).replace(/^-|\./g, "").length / 2) + 1;
    case "B":
      return Buffer.from(String(content), "base64").length;
    case "M":
      return 3 + itemSize(content as Record<string, Record<string, unknown>>);
    case "L":
      return 3 + (content as Record<string, unknown>[]).reduce((sum, v) => sum + 1 + valueSize(v), 0);
    case "SS":
    case "NS":
      return (content as string[]).reduce((sum, v) => sum + Buffer.byteLength(v), 0);
    default:
      return 1;
  }
}
const itemSize = (item: Record<string, Record<string, unknown>>) =>
  Object.entries(item).reduce((sum, [name, value]) => sum + Buffer.byteLength(name) + valueSize(value), 0);

type WireItem = Record<string, Record<string, unknown>>;
type TransactAction = Record<string, { Item?: WireItem; Key?: WireItem; TableName?: string }>;

/**
 * Sizes of the items over 1 KB that transactions put, by table and key, so that a later
 * transactional update or delete of one is billed by its size, as AWS does, although
 * DynamoDB Local reports nothing for it (rollup deltas are put by one transaction and
 * deleted by another).
 */
const knownSizes = new Map<string, number>();
const sizeKey = (table: string | undefined, key: WireItem) =>
  `${table}|${JSON.stringify(key.pk)}|${JSON.stringify(key.sk)}`;

/**
 * Write units of a TransactWriteItems request as AWS bills them: 2 per KB of each item
 * written. DynamoDB Local reports only the puts of a transaction (its updates and deletes
 * count nothing), so the units are computed from the request: a put by its item's size, an
 * update, delete or condition check by the size of the item a transaction put earlier
 * under that key, else at its 1 KB minimum (job and rollup items are put otherwise; they
 * are smaller unless a metric keeps a histogram).
 */
function transactionWriteUnits(body: Record<string, unknown> | undefined, byKind: Record<string, number>): number {
  const actions = (body?.TransactItems ?? []) as TransactAction[];
  return actions.reduce((sum, action) => {
    const [kind, request] = Object.entries(action)[0] ?? [];
    let bytes = 1;
    let itemKind = "item";
    if (kind === "Put" && request?.Item) {
      bytes = itemSize(request.Item);
      if (bytes > 1024) knownSizes.set(sizeKey(request.TableName, request.Item), bytes);
      itemKind = String(request.Item.entity?.S ?? itemKind);
    } else if (request?.Key) {
      const key = sizeKey(request.TableName, request.Key);
      bytes = knownSizes.get(key) ?? 1;
      if (kind === "Delete") knownSizes.delete(key);
      // Keys read ORG#<org>#<TYPE>#…: the type says what the item is.
      itemKind = String(request.Key.pk?.S ?? "").split("#")[2] ?? itemKind;
    }
    const units = TRANSACTION_FACTOR * Math.max(1, Math.ceil(bytes / 1024));
    byKind[`${kind} ${itemKind}`] = (byKind[`${kind} ${itemKind}`] ?? 0) + units;
    return sum + units;
  }, 0);
}

function capacityUnits(body: Record<string, unknown>): number {
  const consumed = body.ConsumedCapacity as { CapacityUnits?: number } | { CapacityUnits?: number }[] | undefined;
  const list = Array.isArray(consumed) ? consumed : consumed ? [consumed] : [];
  return list.reduce((sum, entry) => sum + (entry.CapacityUnits ?? 0), 0);
}

export async function startRequestMeter(target: string, options: { onMessagesSent?: () => void } = {}) {
  const upstream = new URL(target);
  let counts = emptyCounts();

  function record(
    action: string,
    requestBody: Record<string, unknown> | undefined,
    responseBody: Buffer,
    engineMs: number,
  ) {
    const responseText = () => responseBody.toString("utf8");
    counts.requests[action] = (counts.requests[action] ?? 0) + 1;
    counts.engineMs[action] = (counts.engineMs[action] ?? 0) + engineMs;
    if (action === "SendMessageBatch" || action === "SendMessage") {
      const queueUrl = String(requestBody?.QueueUrl ?? "");
      const queue = queueUrl.split("/").at(-1) ?? "";
      const entries = action === "SendMessage" ? 1 : ((requestBody?.Entries as unknown[]) ?? []).length;
      // Failed entries are re-sent by the caller; count only what the emulator accepted.
      let failed = 0;
      try {
        failed = ((JSON.parse(responseText()) as { Failed?: unknown[] }).Failed ?? []).length;
      } catch {}
      counts.messagesSentByQueue[queue] = (counts.messagesSentByQueue[queue] ?? 0) + entries - failed;
      options.onMessagesSent?.();
    }
    if (CAPACITY_ACTIONS.has(action)) {
      let response: Record<string, unknown> = {};
      try {
        response = JSON.parse(responseText()) as Record<string, unknown>;
      } catch {}
      let units = capacityUnits(response);
      // Only a transaction that went through reports its capacity (and writes anything).
      if (action === "TransactWriteItems" && response.ConsumedCapacity) {
        units = Math.max(units * TRANSACTION_FACTOR, transactionWriteUnits(requestBody, counts.writeUnitsByKind));
      } else if (action.startsWith("Transact")) units *= TRANSACTION_FACTOR;
      else if (WRITE_ACTIONS.has(action)) {
        counts.writeUnitsByKind[action] = (counts.writeUnitsByKind[action] ?? 0) + units;
      }
      if (WRITE_ACTIONS.has(action)) counts.writeUnits += units;
      else counts.readUnits += units;
    }
  }

  async function forward(req: IncomingMessage, res: ServerResponse) {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    let body: Buffer = Buffer.concat(chunks);
    const target = String(req.headers["x-amz-target"] ?? "");
    const action = target.split(".").at(-1) ?? "unknown";
    // Only what is counted is parsed: the proxy shares the 2 cores with what it measures.
    let parsed: Record<string, unknown> | undefined;
    if (CAPACITY_ACTIONS.has(action) || action.startsWith("SendMessage")) {
      try {
        parsed = JSON.parse(body.toString("utf8")) as Record<string, unknown>;
      } catch {}
    }
    if (parsed && target.startsWith("DynamoDB_") && CAPACITY_ACTIONS.has(action)) {
      parsed.ReturnConsumedCapacity ??= "TOTAL";
      body = Buffer.from(JSON.stringify(parsed));
    }
    const headers = { ...req.headers, host: upstream.host, "content-length": String(body.length) };
    const sentAt = performance.now();
    const upstreamResponse = await new Promise<IncomingMessage>((resolve, reject) => {
      const outgoing = httpRequest(
        { hostname: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers },
        resolve,
      );
      outgoing.on("error", reject);
      outgoing.end(body);
    });
    const responseChunks: Buffer[] = [];
    for await (const chunk of upstreamResponse) responseChunks.push(chunk as Buffer);
    const responseBody = Buffer.concat(responseChunks);
    const prefix = target.startsWith("DynamoDBStreams_") ? "Streams." : "";
    if (target) record(prefix + action, parsed, responseBody, performance.now() - sentAt);
    res.writeHead(upstreamResponse.statusCode ?? 502, upstreamResponse.headers);
    res.end(responseBody);
  }

  const server = createServer((req, res) => {
    forward(req, res).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(502);
      res.end(String(error));
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    counts: (): MeterCounts => structuredClone(counts),
    reset() {
      counts = emptyCounts();
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export type RequestMeter = Awaited<ReturnType<typeof startRequestMeter>>;
