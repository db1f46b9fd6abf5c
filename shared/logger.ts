/**
 * One structured logger per container; never log transcripts or keys. Every line carries the
 * Lambda context (request id, cold start: `withLambdaContext`) and the ids of what it is
 * about: the organization and job of the message or request being handled
 * (`withLogContext`), so one job's story can be read across functions.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { LogFormatter, Logger, LogItem } from "@aws-lambda-powertools/logger";
import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import type { LogAttributes, UnformattedAttributes } from "@aws-lambda-powertools/logger/types";
import { captureLambdaHandler } from "@aws-lambda-powertools/tracer/middleware";
import middy from "@middy/core";
import type { Context } from "aws-lambda";
import { SERVICE_NAME } from "./observability.ts";
import { tracer } from "./tracer.ts";

/** Correlation ids of the work in hand; a batch's messages each have their own. */
export interface LogContext {
  orgId?: string;
  jobId?: string;
}

const scoped = new AsyncLocalStorage<LogContext>();

/** Runs `fn` with `context` on every line it logs (nested contexts add to the outer one). */
export function withLogContext<T>(context: LogContext, fn: () => T): T {
  const defined = Object.fromEntries(Object.entries(context).filter(([, value]) => value !== undefined));
  return scoped.run({ ...scoped.getStore(), ...defined }, fn);
}

/** Powertools' standard keys, then the scoped correlation ids, then the line's own. */
class CorrelatedLogFormatter extends LogFormatter {
  formatAttributes(attributes: UnformattedAttributes, additional: LogAttributes): LogItem {
    return new LogItem({
      attributes: {
        level: attributes.logLevel,
        message: attributes.message,
        timestamp: this.formatTimestamp(attributes.timestamp),
        service: attributes.serviceName,
        cold_start: attributes.lambdaContext?.coldStart,
        function_arn: attributes.lambdaContext?.invokedFunctionArn,
        function_memory_size: attributes.lambdaContext?.memoryLimitInMB,
        function_name: attributes.lambdaContext?.functionName,
        function_request_id: attributes.lambdaContext?.awsRequestId,
        sampling_rate: attributes.sampleRateValue,
        xray_trace_id: attributes.xRayTraceId,
      },
    }).addAttributes({ ...scoped.getStore(), ...additional });
  }
}

export const logger = new Logger({
  // The deployed stack's name (set by the CDK app), so two stacks' lines can be told apart.
  serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? SERVICE_NAME,
  logLevel: (process.env.LOG_LEVEL ?? "INFO") as "INFO",
  logFormatter: new CorrelatedLogFormatter(),
});

/**
 * A handler whose every log line carries the invocation's Lambda context (keys reset after
 * each invocation) and whose invocation is traced (shared/tracer.ts).
 */
export const withLambdaContext = <E, R>(handler: (event: E, context: Context) => Promise<R>) =>
  middy<E, R>(handler)
    .use(captureLambdaHandler(tracer, { captureResponse: false }))
    .use(injectLambdaContext(logger, { resetKeys: true }));
