/**
 * Runs the wiring table on local engines with the very same Lambda handlers: the HTTP
 * gateway for routes (behind the wiring's request authorizer, as deployed), SQS pollers for queue consumers and stream pollers for stream
 * consumers. The caller creates the table and queues and sets the functions' environment
 * (TABLE_NAME, queue URLs, endpoints, credentials) before calling startLocalRuntime.
 */
import { Agent } from "node:http";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBStreamsClient } from "@aws-sdk/client-dynamodb-streams";
import { SQSClient } from "@aws-sdk/client-sqs";
import { type QueueName, queueDeclarations } from "../../shared/table.ts";
import type { FunctionEntry, QueueConsumerEntry, Wiring } from "../../shared/wiring.ts";
import { installAccessGuard } from "./access-guard.ts";
import { dropFairQueue, makeFairQueue } from "./fair-queues.ts";
import { type HttpGatewayStats, startHttpGateway } from "./http-gateway.ts";
import { createHandlerResolver, invokeHandler, type LambdaHandler, type RuntimeLogger } from "./invoke.ts";
import { startScheduler } from "./scheduler.ts";
import { openSharedStream, type SharedStream } from "./shared-stream.ts";
import { emptySqsStats, type SqsConsumerStats, type SqsPoller, startSqsPoller } from "./sqs-poller.ts";
import { type StreamConsumerStats, type StreamPoller, startStreamPoller } from "./stream-poller.ts";
import type { TwinDelivery } from "./twins.ts";

export type { LambdaHandler, RuntimeLogger } from "./invoke.ts";

export interface LocalRuntimeOptions {
  /** Normally the exported `wiring`. */
  wiring: Wiring;
  dynamodbEndpoint: string;
  sqsEndpoint: string;
  /** Default us-east-1; credentials are fake. */
  region?: string;
  tableName: string;
  queueUrls: Record<QueueName, string>;
  /** Dead-letter queue URLs, for consumers of a queue's dead letters. */
  deadLetterQueueUrls?: Partial<Record<QueueName, string>>;
  /** HTTP port; 0 (the default) = a free port. Bound to 127.0.0.1 only. */
  port?: number;
  /** Replace a function's handler by wiring id (tests inject faults). */
  handlerOverrides?: Record<string, LambdaHandler>;
  /** Invoke every SQS and stream batch twice with identical records (tests prove idempotency). */
  deliverEachBatchTwice?: boolean;
  /** With deliverEachBatchTwice: a twin after its batch, at the same time, or batch by batch each way (the default). */
  twinDelivery?: TwinDelivery;
  /** Poll cadence; keep small for tests. Default 200 ms. */
  idlePollMs?: number;
  /** Concurrent poll loops per queue consumer, capped by its maxConcurrency. Default 4. */
  maxPollersPerQueue?: number;
  /** Runs every schedule at this interval instead of its expression's (tests). */
  scheduleIntervalMs?: number;
  logger?: RuntimeLogger;
  /** Called with each AWS client the runtime builds for its pollers (the benchmark counts their requests). */
  instrumentClient?: (client: SQSClient | DynamoDBClient | DynamoDBStreamsClient) => void;
}

export interface LocalRuntimeStats {
  http: HttpGatewayStats;
  /** Per queue name (summed over its consumers). */
  queues: Record<string, SqsConsumerStats>;
  /** Per consumer id, queue and stream consumers alike. */
  consumers: Record<string, SqsConsumerStats | StreamConsumerStats>;
  /** Per stream consumer id. */
  streams: Record<string, StreamConsumerStats>;
}

export interface LocalRuntime {
  baseUrl: string;
  port: number;
  stats(): LocalRuntimeStats;
  /** Runs a schedule's function now, as its next tick would, and answers its result. */
  runSchedule(scheduleId: string): Promise<unknown>;
  stop(): Promise<void>;
}

const consoleLogger: RuntimeLogger = {
  info: (msg, extra) => console.log(`[local-runtime] ${msg}`, ...(extra ? [extra] : [])),
  error: (msg, extra) => console.error(`[local-runtime] ${msg}`, ...(extra ? [extra] : [])),
};

function sumSqsStats(stats: SqsConsumerStats[]): SqsConsumerStats {
  const total = emptySqsStats();
  for (const entry of stats) {
    for (const key of Object.keys(total) as (keyof SqsConsumerStats)[]) total[key] += entry[key];
  }
  return total;
}

export async function startLocalRuntime(options: LocalRuntimeOptions): Promise<LocalRuntime> {
  const region = options.region ?? "us-east-1";
  const logger = options.logger ?? consoleLogger;
  const idlePollMs = options.idlePollMs ?? 200;
  const credentials = { accessKeyId: "local", secretAccessKey: "local" };
  const knownIds = new Set(
    [
      ...options.wiring.routes,
      options.wiring.authorizer,
      ...options.wiring.queueConsumers,
      ...options.wiring.streamConsumers,
      ...options.wiring.schedules,
    ].map((entry) => entry.id),
  );
  // An override for an id the wiring no longer has would silently test the real handler.
  const unknownOverrides = Object.keys(options.handlerOverrides ?? {}).filter((id) => !knownIds.has(id));
  if (unknownOverrides.length > 0)
    throw new Error(`No function in the wiring for overrides: ${unknownOverrides.join(", ")}`);
  installAccessGuard({ queues: options.queueUrls, deadLetterQueues: options.deadLetterQueueUrls });
  const resolveHandler = createHandlerResolver(options.handlerOverrides);
  const invoke = (entry: FunctionEntry, event: unknown) => invokeHandler(resolveHandler, entry, event, region);

  // Each Lambda poller has its own connection: a shared client's default cap of 50 sockets
  // would make a consumer's receives wait behind another's idle 20-second long polls.
  const sqs = new SQSClient({
    region,
    endpoint: options.sqsEndpoint,
    credentials,
    requestHandler: { httpAgent: new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY }) },
  });
  const dynamodb = new DynamoDBClient({ region, endpoint: options.dynamodbEndpoint, credentials });
  const streams = new DynamoDBStreamsClient({ region, endpoint: options.dynamodbEndpoint, credentials });
  for (const client of [sqs, dynamodb, streams]) options.instrumentClient?.(client);

  const sqsPollers: { queue: QueueName; id: string; poller: SqsPoller }[] = [];
  const streamPollers: { id: string; poller: StreamPoller }[] = [];
  const scheduler = startScheduler({
    schedules: options.wiring.schedules,
    invoke: (entry, event) => invoke(entry, event),
    intervalMs: options.scheduleIntervalMs,
    logger,
  });
  let stream: SharedStream | undefined;
  const fairQueueUrls: string[] = [];
  /** A consumer's queue as a fair queue, when it is declared one (dead letters are not grouped). */
  const fairQueueFor = (entry: QueueConsumerEntry, queueUrl: string) => {
    if (entry.deadLetters || !queueDeclarations[entry.queue].fair) return undefined;
    fairQueueUrls.push(queueUrl);
    return makeFairQueue(sqs, queueUrl);
  };
  const stopAll = async () => {
    scheduler.stop();
    // Each poller's stop aborts its loops at once; closing the stream then ends the reads they wait for.
    const stopping = [...sqsPollers, ...streamPollers].map(({ poller }) => poller.stop());
    stream?.close();
    await Promise.allSettled(stopping);
    await Promise.allSettled(fairQueueUrls.map((url) => dropFairQueue(url)));
  };

  try {
    for (const entry of options.wiring.queueConsumers) {
      const queueUrl = entry.deadLetters ? options.deadLetterQueueUrls?.[entry.queue] : options.queueUrls[entry.queue];
      if (!queueUrl) {
        throw new Error(
          `No URL for ${entry.deadLetters ? "the dead letters of " : ""}queue "${entry.queue}" consumed by ${entry.id}`,
        );
      }
      const fair = fairQueueFor(entry, queueUrl);
      const poller = await startSqsPoller({
        entry,
        queueUrl,
        fair,
        sqs,
        region,
        invoke: (event) => invoke(entry, event),
        pollers: Math.min(entry.maxConcurrency, options.maxPollersPerQueue ?? 4),
        deliverEachBatchTwice: options.deliverEachBatchTwice ?? false,
        twinDelivery: options.twinDelivery,
        idlePollMs,
        logger,
      });
      sqsPollers.push({ queue: entry.queue, id: entry.id, poller });
    }
    const consumers = options.wiring.streamConsumers;
    // A table without stream consumers may have no stream.
    if (consumers.length > 0) {
      // Read once for all the table's consumers (see openSharedStream).
      stream = await openSharedStream({
        tableName: options.tableName,
        dynamodb,
        streams,
        region,
        consumerIds: consumers.map((entry) => entry.id),
        quietMs: idlePollMs / 4,
        logger,
      });
      for (const entry of consumers) {
        const poller = await startStreamPoller({
          entry,
          stream,
          invoke: (event) => invoke(entry, event),
          deliverEachBatchTwice: options.deliverEachBatchTwice ?? false,
          twinDelivery: options.twinDelivery,
          idlePollMs,
          logger,
        });
        streamPollers.push({ id: entry.id, poller });
      }
    }
  } catch (error) {
    await stopAll();
    throw error;
  }

  let gateway: Awaited<ReturnType<typeof startHttpGateway>>;
  try {
    gateway = await startHttpGateway({
      routes: options.wiring.routes,
      invoke: (route, event) => invoke(route, event),
      authorize: (event) => invoke(options.wiring.authorizer, event),
      region,
      port: options.port ?? 0,
      logger,
    });
  } catch (error) {
    await stopAll();
    throw error;
  }

  let stopped: Promise<void> | undefined;
  return {
    baseUrl: gateway.baseUrl,
    port: gateway.port,
    runSchedule: (scheduleId) => scheduler.trigger(scheduleId),
    stats() {
      const queueStats = sqsPollers.map(({ queue, id, poller }) => ({ queue, id, stats: poller.stats() }));
      const queues: Record<string, SqsConsumerStats> = {};
      for (const queue of new Set(queueStats.map(({ queue }) => queue))) {
        queues[queue] = sumSqsStats(queueStats.filter((entry) => entry.queue === queue).map(({ stats }) => stats));
      }
      const streamsStats = Object.fromEntries(streamPollers.map(({ id, poller }) => [id, poller.stats()]));
      return {
        http: gateway.stats(),
        queues,
        consumers: { ...Object.fromEntries(queueStats.map(({ id, stats }) => [id, stats])), ...streamsStats },
        streams: streamsStats,
      };
    },
    stop() {
      stopped ??= (async () => {
        await Promise.allSettled([gateway.stop(), stopAll()]);
        sqs.destroy();
        dynamodb.destroy();
        streams.destroy();
      })();
      return stopped;
    },
  };
}
