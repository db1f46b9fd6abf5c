/**
 * The operations dashboard: one row per pipeline stage, in the order work flows through
 * them, each showing what the alarms watch there (errors and throttles, queue depth and
 * age, dead letters, stream lag) next to the stage's own counts. Every function and queue
 * of the stack appears in exactly one stage.
 */
import { Duration } from "aws-cdk-lib";
import type { HttpApi } from "aws-cdk-lib/aws-apigatewayv2";
import {
  Dashboard,
  GraphWidget,
  type GraphWidgetProps,
  type IMetric,
  type IWidget,
  MathExpression,
  Metric,
  TextWidget,
} from "aws-cdk-lib/aws-cloudwatch";
import type { ITable } from "aws-cdk-lib/aws-dynamodb";
import type { IFunction } from "aws-cdk-lib/aws-lambda";
import type { IQueue } from "aws-cdk-lib/aws-sqs";
import type { Construct } from "constructs";
import { ALARMED_COUNTS, LLM_SPEND_METRIC } from "../../shared/observability.ts";
import type { QueueName } from "../../shared/table.ts";
import type { Wiring } from "../../shared/wiring.ts";

export interface DashboardSources {
  wiring: Wiring;
  /** Every function of the stack, by wiring id. */
  functions: Record<string, IFunction>;
  queues: Record<QueueName, IQueue>;
  deadLetterQueues: Record<QueueName, IQueue>;
  streamFailures: IQueue;
  scheduleFailures: IQueue;
  api: HttpApi;
  table: ITable;
  /** One of the stack's own metrics (shared/observability.ts), summed per period. */
  businessMetric: (metricName: string, period?: Duration) => IMetric;
}

interface Stage {
  title: string;
  about: string;
  functionIds: string[];
  /** Queues shown with their depth and the age of their oldest message. */
  queues: [label: string, queue: IQueue][];
  /** Queues holding what failed, shown with their depth. */
  failureQueues: [label: string, queue: IQueue][];
  widgets: IWidget[];
}

const FIVE_MINUTES = Duration.minutes(5);
const WIDTH = 24;
/** Three graphs side by side; a stage with more wraps onto the next line. */
const graph = (props: GraphWidgetProps) => new GraphWidget({ width: WIDTH / 3, height: 6, ...props });

/** One line per metric when few, else their sum (a route per function makes dozens). */
function combined(label: string, metrics: IMetric[]): IMetric[] {
  if (metrics.length <= 6) return metrics;
  // Ids unique within a graph: one graph may hold two sums.
  const id = (i: number) => `${label.replace(/[^a-z]/g, "")}${i}`;
  return [
    new MathExpression({
      expression: metrics.map((_, i) => id(i)).join(" + "),
      usingMetrics: Object.fromEntries(metrics.map((metric, i) => [id(i), metric])),
      label,
      period: FIVE_MINUTES,
    }),
  ];
}

function stages(sources: DashboardSources): Stage[] {
  const { wiring, queues, deadLetterQueues, api, table, businessMetric: own } = sources;
  const consumersOf = (queue: QueueName) => wiring.queueConsumers.filter((c) => c.queue === queue).map((c) => c.id);
  const queueStage = (queue: QueueName) => ({
    functionIds: consumersOf(queue),
    queues: [[queue, queues[queue]]] as [string, IQueue][],
    failureQueues: [[`${queue} DLQ`, deadLetterQueues[queue]]] as [string, IQueue][],
  });
  return [
    {
      title: "API",
      about: "requests, client and server errors, latency; one function per route and the key authorizer",
      functionIds: [wiring.authorizer.id, ...wiring.routes.map((r) => r.id)],
      queues: [],
      failureQueues: [],
      widgets: [
        graph({
          title: "Requests / 4xx / 5xx",
          left: [api.metricCount({ period: FIVE_MINUTES })],
          right: [api.metricClientError({ period: FIVE_MINUTES }), api.metricServerError({ period: FIVE_MINUTES })],
        }),
        graph({ title: "Latency p95 (ms)", left: [api.metricLatency({ statistic: "p95" })] }),
      ],
    },
    {
      title: "Dispatch",
      about: "a job's pages of calls become one work message per call × metric",
      ...queueStage("dispatch"),
      widgets: [],
    },
    {
      title: "Evaluate",
      about: "built-in metrics and the LLM judge record values and move job counters; dead letters recorded as ERROR",
      ...queueStage("work"),
      widgets: [
        graph({
          title: "Items evaluated / failed / dead-lettered / malformed",
          left: [own("ItemsEvaluated"), own("ItemsFailed")],
          right: [own(ALARMED_COUNTS.deadLetteredItems), own(ALARMED_COUNTS.malformedWorkMessages)],
        }),
      ],
    },
    {
      title: "LLM",
      about: "tokens, estimated spend and Anthropic rate limits; batch-mode items gathered into Message Batches",
      ...queueStage("batch"),
      widgets: [
        graph({
          title: "LLM tokens",
          left: [own("InputTokens"), own("OutputTokens"), own("CacheReadTokens"), own("CacheCreationTokens")],
        }),
        graph({
          title: "LLM spend (USD) / rate-limited requests",
          left: [own(LLM_SPEND_METRIC)],
          right: [own(ALARMED_COUNTS.llmRateLimited)],
        }),
      ],
    },
    {
      title: "Table stream",
      about: "jobs finalized, rollups applied, new calls matched to policies; records that failed every retry",
      functionIds: wiring.streamConsumers.map((c) => c.id),
      queues: [],
      failureQueues: [["stream-failures", sources.streamFailures]],
      widgets: [
        graph({
          title: "Iterator age, max (ms)",
          left: wiring.streamConsumers.map((c) =>
            sources.functions[c.id]?.metric("IteratorAge", { statistic: "Maximum", period: Duration.minutes(1) }),
          ) as IMetric[],
        }),
      ],
    },
    {
      title: "Webhooks",
      about: "signed completion webhooks, retried with backoff",
      ...queueStage("webhook"),
      widgets: [],
    },
    {
      title: "Schedules",
      about: "policy batches, backfills, rollup sweeps, batch results, and the reconciler's repairs",
      functionIds: wiring.schedules.map((s) => s.id),
      queues: [],
      failureQueues: [["schedule-failures", sources.scheduleFailures]],
      widgets: [
        graph({
          title: "Jobs repaired / Scheduler target errors",
          left: [own(ALARMED_COUNTS.jobsRepaired)],
          right: [
            new Metric({
              namespace: "AWS/Scheduler",
              metricName: "TargetErrorCount",
              dimensionsMap: { ScheduleGroup: "default" },
              statistic: "Sum",
              period: FIVE_MINUTES,
            }),
          ],
        }),
      ],
    },
    {
      title: "Table",
      about: "capacity consumed and throttled requests",
      functionIds: [],
      queues: [],
      failureQueues: [],
      widgets: [
        graph({
          title: "Consumed read / write units",
          left: [table.metricConsumedReadCapacityUnits({ period: FIVE_MINUTES })],
          right: [table.metricConsumedWriteCapacityUnits({ period: FIVE_MINUTES })],
        }),
        graph({
          title: "Throttled reads / writes",
          left: ["ReadThrottleEvents", "WriteThrottleEvents"].map((event) =>
            table.metric(event, { statistic: "Sum", period: FIVE_MINUTES }),
          ),
        }),
      ],
    },
  ];
}

/** The stage's own widgets after its functions' and queues' (what the alarms watch). */
function stageWidgets(stage: Stage, functions: Record<string, IFunction>): IWidget[] {
  const fns = stage.functionIds.flatMap((id) => (functions[id] ? [[id, functions[id]] as const] : []));
  const per = (metricOf: (fn: IFunction) => IMetric, label: string) =>
    combined(
      label,
      fns.map(([, fn]) => metricOf(fn)),
    );
  const widgets: IWidget[] = [];
  if (fns.length > 0) {
    widgets.push(
      graph({
        title: "Function errors / throttles",
        left: per((fn) => fn.metricErrors({ period: FIVE_MINUTES }), "errors"),
        right: per((fn) => fn.metricThrottles({ period: FIVE_MINUTES }), "throttles"),
      }),
      graph({
        title: "Function duration p95 (ms)",
        left: per((fn) => fn.metricDuration({ statistic: "p95", period: FIVE_MINUTES }), "duration p95, summed"),
      }),
    );
  }
  if (stage.queues.length > 0) {
    widgets.push(
      graph({
        title: "Queue: visible, in flight / oldest message (s)",
        left: stage.queues.flatMap(([, queue]) => [
          queue.metricApproximateNumberOfMessagesVisible(),
          queue.metricApproximateNumberOfMessagesNotVisible(),
        ]),
        right: stage.queues.map(([, queue]) => queue.metricApproximateAgeOfOldestMessage()),
      }),
    );
  }
  if (stage.failureQueues.length > 0) {
    widgets.push(
      graph({
        title: `Failed, waiting: ${stage.failureQueues.map(([label]) => label).join(", ")}`,
        left: stage.failureQueues.map(([, queue]) => queue.metricApproximateNumberOfMessagesVisible()),
      }),
    );
  }
  return [...widgets, ...stage.widgets];
}

export function addPipelineDashboard(scope: Construct, id: string, sources: DashboardSources): Dashboard {
  const dashboard = new Dashboard(scope, id);
  for (const stage of stages(sources)) {
    dashboard.addWidgets(new TextWidget({ markdown: `## ${stage.title}\n${stage.about}`, width: WIDTH, height: 2 }));
    dashboard.addWidgets(...stageWidgets(stage, sources.functions));
  }
  return dashboard;
}
