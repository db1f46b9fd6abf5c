/**
 * Counts the AWS requests of SDK clients per API action, with DynamoDB capacity units: an
 * SDK middleware the benchmark adds to the service's clients (the handlers' shared ones and
 * the local runtime's pollers), so every request the service and its event sources make is
 * counted without changing what they send, except that DynamoDB requests ask for
 * `ReturnConsumedCapacity: INDEXES` (the total, and what the index took of it).
 *
 * It counts each attempt, as AWS bills retries too. (Counting proxies in front of the
 * engines did this before; in process it costs less of the CPU it measures and adds no hop.)
 */
import type {
  FinalizeRequestMiddleware,
  HandlerExecutionContext,
  InitializeMiddleware,
  MiddlewareStack,
} from "@smithy/types";
import { logicalQueueName } from "../infra/local/fair-queues.ts";

export interface MeterCounts {
  /** Requests per action, e.g. `SendMessageBatch`, `TransactWriteItems`. */
  requests: Record<string, number>;
  /** DynamoDB read and write capacity units as AWS bills them (transactions at 2×, see `transactionWriteUnits`). */
  readUnits: number;
  writeUnits: number;
  /** The part of `writeUnits` the table's secondary index took (as the engine reports it). */
  indexWriteUnits: number;
  /**
   * Write units by what was written: `<action> <item kind>` for transactions (the entity of a
   * put item, the key type of an updated or deleted one, e.g. `Update JOB`), else the action.
   */
  writeUnitsByKind: Record<string, number>;
  /** Messages sent to queues whose URL contains each key (SendMessage + SendMessageBatch entries). */
  messagesSentByQueue: Record<string, number>;
  /**
   * Milliseconds per action from sending to the parsed response, summed over requests: where
   * the engines' time goes (it includes the client's signing and parsing).
   */
  roundTripMs: Record<string, number>;
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
/** AWS bills an item written in a transaction twice: 2 units per KB. */
const TRANSACTION_FACTOR = 2;

const emptyCounts = (): MeterCounts => ({
  requests: {},
  readUnits: 0,
  writeUnits: 0,
  indexWriteUnits: 0,
  writeUnitsByKind: {},
  messagesSentByQueue: {},
  roundTripMs: {},
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
 * transactional update or delete of one is billed by its size, as AWS does (rollup deltas
 * are put by one transaction and deleted by another).
 */
const knownSizes = new Map<string, number>();
const sizeKey = (table: string | undefined, key: WireItem) =>
  `${table}|${JSON.stringify(key.pk)}|${JSON.stringify(key.sk)}`;

/**
 * Write units of a TransactWriteItems request as AWS bills them: 2 per KB of each item
 * written. DynamoDB Local reports a transaction's units at that rate but counts items of
 * equal units once (three 1 KB puts report 2 units, not 6), so the units are computed from
 * the request: a put by its item's size, an update, delete or condition check by the size
 * of the item a transaction put earlier under that key, else at its 1 KB minimum (job and
 * rollup items are put otherwise; they are smaller unless a metric keeps a histogram).
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

interface Consumed {
  CapacityUnits?: number;
  GlobalSecondaryIndexes?: Record<string, { CapacityUnits?: number }>;
}

const consumedOf = (output: Record<string, unknown>): Consumed[] => {
  const consumed = output.ConsumedCapacity as Consumed | Consumed[] | undefined;
  return Array.isArray(consumed) ? consumed : consumed ? [consumed] : [];
};

function capacityUnits(output: Record<string, unknown>): number {
  return consumedOf(output).reduce((sum, entry) => sum + (entry.CapacityUnits ?? 0), 0);
}

function indexUnits(output: Record<string, unknown>): number {
  return consumedOf(output)
    .flatMap((entry) => Object.values(entry.GlobalSecondaryIndexes ?? {}))
    .reduce((sum, index) => sum + (index.CapacityUnits ?? 0), 0);
}

/** Messages accepted by queues whose name ends with `suffix`. */
export const messagesSentTo = (counts: Pick<MeterCounts, "messagesSentByQueue">, suffix: string) =>
  Object.entries(counts.messagesSentByQueue)
    .filter(([queue]) => queue.endsWith(suffix))
    .reduce((sum, [, n]) => sum + n, 0);

/** An AWS SDK v3 client: the meter adds its middleware to the client's stack. */
export interface MeteredClient {
  // biome-ignore lint/suspicious/noExplicitAny: every client's stack, whatever its input and output types.
  middlewareStack: MiddlewareStack<any, any>;
}

type Input = Record<string, unknown>;
type Output = Record<string, unknown>;

/** `PutItem`, or `Streams.GetRecords` for the DynamoDB Streams client (it shares DynamoDB's engine). */
const actionOf = (context: HandlerExecutionContext) =>
  (context.clientName === "DynamoDBStreamsClient" ? "Streams." : "") +
  String(context.commandName ?? "unknown").replace(/Command$/, "");

/** Messages a send put on its queue. */
function countMessagesSent(counts: MeterCounts, action: string, input: Input | undefined, output: Output | undefined) {
  // A fair queue's group queue (the local model) counts as the queue.
  const queue = logicalQueueName(
    String(input?.QueueUrl ?? "")
      .split("/")
      .at(-1) ?? "",
  );
  const entries = action === "SendMessage" ? 1 : ((input?.Entries as unknown[]) ?? []).length;
  // Failed entries are re-sent by the caller; count only what the emulator accepted (none if it threw).
  const failed = output ? ((output.Failed as unknown[] | undefined) ?? []).length : entries;
  counts.messagesSentByQueue[queue] = (counts.messagesSentByQueue[queue] ?? 0) + entries - failed;
}

/** The read or write units a request consumed. */
function countCapacity(counts: MeterCounts, action: string, input: Input | undefined, output: Output | undefined) {
  const response = output ?? {};
  let units = capacityUnits(response);
  // Only a transaction that went through reports its capacity (and writes anything).
  // DynamoDB Local's report is a floor: it knows the size of an item it updates.
  if (action === "TransactWriteItems" && response.ConsumedCapacity) {
    units = Math.max(units, transactionWriteUnits(input, counts.writeUnitsByKind));
  } else if (WRITE_ACTIONS.has(action)) {
    counts.writeUnitsByKind[action] = (counts.writeUnitsByKind[action] ?? 0) + units;
  }
  if (WRITE_ACTIONS.has(action)) {
    counts.writeUnits += units;
    counts.indexWriteUnits += indexUnits(response);
  } else {
    counts.readUnits += units;
  }
}

export function createRequestMeter() {
  let counts = emptyCounts();

  function record(action: string, input: Input | undefined, output: Output | undefined, roundTripMs: number) {
    counts.requests[action] = (counts.requests[action] ?? 0) + 1;
    counts.roundTripMs[action] = (counts.roundTripMs[action] ?? 0) + roundTripMs;
    if (action === "SendMessageBatch" || action === "SendMessage") countMessagesSent(counts, action, input, output);
    if (CAPACITY_ACTIONS.has(action)) countCapacity(counts, action, input, output);
  }

  const askForCapacity: InitializeMiddleware<Input, Output> = (next, context) => (args) =>
    context.clientName === "DynamoDBClient" && CAPACITY_ACTIONS.has(actionOf(context))
      ? next({ ...args, input: { ReturnConsumedCapacity: "INDEXES", ...args.input } })
      : next(args);

  // Inside the retry middleware (finalizeRequest, low priority): once per attempt, and the
  // input is the wire form (the document client has marshalled it), which the transaction
  // write units are computed from.
  const count: FinalizeRequestMiddleware<Input, Output> = (next, context) => async (args) => {
    const started = performance.now();
    let output: Output | undefined;
    try {
      const result = await next(args);
      output = result.output;
      return result;
    } finally {
      record(actionOf(context), args.input, output, performance.now() - started);
    }
  };

  return {
    /** Counts every later request of `client` (and of a document client built on it). */
    attach(client: MeteredClient) {
      client.middlewareStack.add(askForCapacity, { step: "initialize", name: "benchAskForCapacity", override: true });
      client.middlewareStack.add(count, {
        step: "finalizeRequest",
        priority: "low",
        name: "benchRequestMeter",
        override: true,
      });
    },
    counts: (): MeterCounts => structuredClone(counts),
    /** Messages accepted so far by queues whose name ends with `suffix` (read often: no copy). */
    messagesSent: (suffix: string) => messagesSentTo(counts, suffix),
    reset() {
      counts = emptyCounts();
    },
  };
}
