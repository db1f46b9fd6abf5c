/**
 * The whole service in one stack, built from the shared declarations and the wiring
 * table — the same ones the local runtime runs — so the two cannot drift.
 */
import {
  CfnOutput,
  type CfnResource,
  Duration,
  RemovalPolicy,
  Stack,
  type StackProps,
  Tags,
  Validations,
} from "aws-cdk-lib";
import { AccessLogFormat } from "aws-cdk-lib/aws-apigateway";
import {
  type CfnStage,
  CorsHttpMethod,
  HttpApi,
  HttpMethod,
  HttpNoneAuthorizer,
  HttpStage,
  LogGroupLogDestination,
} from "aws-cdk-lib/aws-apigatewayv2";
import { HttpLambdaAuthorizer, HttpLambdaResponseType } from "aws-cdk-lib/aws-apigatewayv2-authorizers";
import { HttpLambdaIntegration } from "aws-cdk-lib/aws-apigatewayv2-integrations";
import {
  Alarm,
  ComparisonOperator,
  type IMetric,
  MathExpression,
  Metric,
  TreatMissingData,
} from "aws-cdk-lib/aws-cloudwatch";
import { SnsAction } from "aws-cdk-lib/aws-cloudwatch-actions";
import {
  AttributeType,
  BillingMode,
  ProjectionType,
  StreamViewType,
  Table,
  TableEncryption,
} from "aws-cdk-lib/aws-dynamodb";
import { Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import { type IKey, Key } from "aws-cdk-lib/aws-kms";
import { type CfnFunction, FilterCriteria, MetricType, StartingPosition } from "aws-cdk-lib/aws-lambda";
import { SqsDestination } from "aws-cdk-lib/aws-lambda-destinations";
import { DynamoEventSource, SqsDlq, SqsEventSource } from "aws-cdk-lib/aws-lambda-event-sources";
import { type ILogGroup, LogGroup, RetentionDays } from "aws-cdk-lib/aws-logs";
import { Schedule, ScheduleExpression } from "aws-cdk-lib/aws-scheduler";
import { LambdaInvoke } from "aws-cdk-lib/aws-scheduler-targets";
import { Secret } from "aws-cdk-lib/aws-secretsmanager";
import { Topic } from "aws-cdk-lib/aws-sns";
import { EmailSubscription } from "aws-cdk-lib/aws-sns-subscriptions";
import { Queue, QueueEncryption, type QueueProps } from "aws-cdk-lib/aws-sqs";
import type { Construct } from "constructs";
import { DEFAULT_JUDGE_MODEL, envFor, queueUrlEnvVar } from "../../shared/config.ts";
import { ALARMED_COUNTS, LLM_SPEND_METRIC, SERVICE_NAME } from "../../shared/observability.ts";
import { type QueueName, queueDeclarations, tableDeclaration } from "../../shared/table.ts";
import {
  type Access,
  DEFAULT_LLM_MAX_CONCURRENCY,
  wiring as defaultWiring,
  type FunctionEntry,
  timeoutOf,
  type Wiring,
} from "../../shared/wiring.ts";
import { addPipelineDashboard } from "./dashboard.ts";
import { ServiceFunction, type ServiceResources } from "./service-function.ts";

/** Settings from CDK context (cdk.json or `-c key=value`), documented in docs/deploy.md. */
export interface ServiceSettings {
  stageName: string;
  judgeModel: string;
  /** Cap on concurrent evaluator invocations (each runs up to a batch's model calls at once, paced by the shared limiter). */
  llmMaxConcurrency: number;
  /**
   * Customer-managed KMS key for the table, queues, log groups and the created secret
   * (its key policy must let CloudWatch Logs use it); AWS-owned keys when unset.
   */
  kmsKeyArn?: string;
  logRetentionDays: RetentionDays;
  deletionProtection: boolean;
  /** Import an existing secret by name instead of creating an empty one. */
  anthropicSecretName?: string;
  alarmEmail?: string;
  /** The estimated LLM spend per hour above which an alarm fires. */
  llmSpendAlarmUsdPerHour: number;
  throttlingRateLimit: number;
  throttlingBurstLimit: number;
  /** On-demand throughput caps on the table (unset: uncapped): requests beyond them are throttled, not billed. */
  tableMaxReadUnits?: number;
  tableMaxWriteUnits?: number;
}

export interface ServiceStackProps extends StackProps {
  settings: ServiceSettings;
  /** The wiring to deploy; tests pass variants. */
  wiring?: Wiring;
  projectRoot: string;
}

/** Failed work waits for a look as long as SQS keeps a message. */
const FAILURE_RETENTION = Duration.days(14);

/** Visibility must outlast every retry of a batch by the consumer (AWS's guidance: 6×). */
const VISIBILITY_TO_TIMEOUT_RATIO = 6;

type MakeFunction = (entry: FunctionEntry, options?: { logGroup?: ILogGroup; role?: Role }) => ServiceFunction;
interface QueueSet {
  queues: Record<QueueName, Queue>;
  deadLetterQueues: Record<QueueName, Queue>;
}

/** A readable id of what an access grants, the same for equal grants: e.g. `readWrite-rate-dispatch`. */
export function accessProfileId(access: Access): string {
  return [
    access.table ?? "noTable",
    ...(access.apiRateLimit ? ["rate"] : []),
    ...[...(access.sendTo ?? [])].sort(),
    ...[...(access.secrets ?? [])].sort(),
  ].join("-");
}

/** A queue as all of the service's are: TLS only, under the customer's key or SQS-managed keys. */
function serviceQueue(scope: Construct, id: string, key: IKey | undefined, props: QueueProps): Queue {
  const encryption = key
    ? { encryption: QueueEncryption.KMS, encryptionMasterKey: key }
    : { encryption: QueueEncryption.SQS_MANAGED };
  return new Queue(scope, id, { ...props, ...encryption, enforceSSL: true });
}

/** A queue that holds what failed elsewhere: the end of the line, so it has no redrive of its own. */
function failureQueue(scope: Construct, id: string, key: IKey | undefined, props: QueueProps, holds: string): Queue {
  const queue = serviceQueue(scope, id, key, { retentionPeriod: FAILURE_RETENTION, ...props });
  const reason = `${id} is itself a dead-letter queue (${holds}); its depth alarm calls for a look, and nothing is lost for 14 days.`;
  Validations.of(queue).acknowledge({ id: "Serverless-SQSRedrivePolicy", reason });
  Validations.of(queue).acknowledge({ id: "AwsSolutions-SQS3", reason });
  return queue;
}

/** Why a function has no Lambda dead-letter queue: each trigger keeps its failures elsewhere. */
const NO_FUNCTION_DLQ = {
  api: "Invoked synchronously by API Gateway: the caller receives the error, there is no event to keep.",
  queue: "Invoked by an SQS event source: a message that keeps failing moves to its queue's dead-letter queue.",
  stream:
    "Invoked by the table's stream: records that fail every retry go to stream-failures (on-failure destination).",
  schedule: "Invoked asynchronously by Scheduler: failed runs go to schedule-failures (on-failure destination).",
};

export class ServiceStack extends Stack {
  constructor(scope: Construct, id: string, props: ServiceStackProps) {
    super(scope, id, props);
    const { settings, projectRoot } = props;
    const wiring = props.wiring ?? defaultWiring;
    const retain = settings.deletionProtection ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;
    // On every resource that takes tags: activate them as cost allocation tags to split the bill.
    Tags.of(this).add("app", SERVICE_NAME);
    Tags.of(this).add("stack", this.stackName);

    // A customer's key, when given, protects everything that holds tenant data or secrets.
    const customerKey = settings.kmsKeyArn ? Key.fromKeyArn(this, "CustomerKey", settings.kmsKeyArn) : undefined;
    const table = this.createTable(settings, retain, customerKey);
    const { queues, deadLetterQueues } = this.createQueues(wiring, customerKey);

    // ---- the Anthropic key: never in an env var; functions read it at run time
    const anthropicSecret = settings.anthropicSecretName
      ? Secret.fromSecretNameV2(this, "AnthropicKey", settings.anthropicSecretName)
      : new Secret(this, "AnthropicKey", {
          description: "Anthropic API key for the LLM judge (set it with put-secret-value)",
          removalPolicy: retain,
          encryptionKey: customerKey,
        });
    Validations.of(anthropicSecret).acknowledge({
      id: "AwsSolutions-SMG4",
      reason: "A third-party (Anthropic) API key: it is rotated in the Anthropic console, not by a Lambda.",
    });
    // Secrets Manager ARNs end in a random suffix: a grant to this one secret ends in -??????.
    const secretResource = settings.anthropicSecretName
      ? `arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:${settings.anthropicSecretName}`
      : `<${this.getLogicalId(anthropicSecret.node.defaultChild as CfnResource)}>`;
    const resources: ServiceResources = {
      table,
      queues,
      anthropicSecret,
      nagResourceIds: {
        tableIndexes: `<${this.getLogicalId(table.node.defaultChild as CfnResource)}.Arn>/index/*`,
        secret: `${secretResource}-??????`,
      },
    };
    const environment = {
      // Both from the stack's name: two stacks in one account and region never mix their metrics.
      POWERTOOLS_SERVICE_NAME: this.stackName,
      POWERTOOLS_METRICS_NAMESPACE: this.stackName,
      LOG_LEVEL: "INFO",
      ...envFor({ judgeModel: settings.judgeModel, workMaxReceiveCount: queueDeclarations.work.maxReceiveCount }),
    };
    const functions: ServiceFunction[] = [];
    const make: MakeFunction = (entry, options = {}) => {
      const fn = new ServiceFunction(this, entry.id, {
        entry,
        environment,
        projectRoot,
        logRetention: settings.logRetentionDays,
        logRemovalPolicy: retain,
        logEncryptionKey: customerKey,
        ...options,
      }).grant(entry.access, resources);
      functions.push(fn);
      return fn;
    };

    const { api, stage } = this.createApi(wiring, settings, { retain, customerKey }, make);
    const streamFailures = failureQueue(this, "stream-failures", customerKey, {}, "stream records that failed");
    // Scheduled invocations that failed every retry (the function's errors say why).
    const scheduleFailures = failureQueue(this, "schedule-failures", customerKey, {}, "scheduled runs that failed");
    this.addQueueConsumers(wiring, settings, { queues, deadLetterQueues }, make);
    this.addStreamConsumers(wiring, table, streamFailures, make);
    this.addSchedules(wiring, scheduleFailures, make);
    const alarmTopic = new Topic(this, "Alarms", { enforceSSL: true });
    if (settings.alarmEmail) {
      alarmTopic.addSubscription(new EmailSubscription(settings.alarmEmail));
      Validations.of(alarmTopic).acknowledge({
        id: "Serverless-SNSRedrivePolicy",
        reason:
          "The optional email subscription: an undelivered mail loses no state, the alarm stays in ALARM in CloudWatch with its history.",
      });
    }
    this.addAlarms(
      alarmTopic,
      settings,
      { deadLetterQueues, streamFailures, scheduleFailures, queues },
      { table, api, functions },
      wiring,
    );
    addPipelineDashboard(this, "Dashboard", {
      wiring,
      functions: Object.fromEntries(functions.map((fn) => [fn.node.id, fn.fn])),
      queues,
      deadLetterQueues,
      streamFailures,
      scheduleFailures,
      api,
      table,
      businessMetric: (name, period) => this.businessMetric(name, period),
    });

    new CfnOutput(this, "ApiUrl", { value: stage.url });
    new CfnOutput(this, "TableName", { value: table.tableName });
    new CfnOutput(this, "AnthropicSecretArn", { value: anthropicSecret.secretArn });
    // Every alarm notifies this topic: subscribe a pager, chat or email to it.
    new CfnOutput(this, "AlarmTopicArn", { value: alarmTopic.topicArn });
    // Read by `npm run replay-stream-failures` (docs/operations.md).
    new CfnOutput(this, "StreamFailuresQueueUrl", { value: streamFailures.queueUrl });
  }

  /** The single table, from the shared declaration. */
  private createTable(settings: ServiceSettings, retain: RemovalPolicy, customerKey: IKey | undefined): Table {
    const table = new Table(this, "Table", {
      partitionKey: { name: tableDeclaration.partitionKey, type: AttributeType.STRING },
      sortKey: { name: tableDeclaration.sortKey, type: AttributeType.STRING },
      timeToLiveAttribute: tableDeclaration.timeToLiveAttribute,
      stream: StreamViewType.NEW_AND_OLD_IMAGES,
      billingMode: BillingMode.PAY_PER_REQUEST,
      maxReadRequestUnits: settings.tableMaxReadUnits,
      maxWriteRequestUnits: settings.tableMaxWriteUnits,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: settings.deletionProtection,
      removalPolicy: retain,
      // AWS-owned keys cost nothing; an AWS-managed key would bill every request to KMS.
      ...(customerKey
        ? { encryption: TableEncryption.CUSTOMER_MANAGED, encryptionKey: customerKey }
        : { encryption: TableEncryption.DEFAULT }),
    });
    for (const index of tableDeclaration.globalSecondaryIndexes) {
      table.addGlobalSecondaryIndex({
        indexName: index.indexName,
        partitionKey: { name: index.partitionKey, type: AttributeType.STRING },
        sortKey: { name: index.sortKey, type: AttributeType.STRING },
        projectionType: ProjectionType.INCLUDE,
        nonKeyAttributes: [...index.projectedAttributes],
      });
    }

    return table;
  }

  /** One queue per declaration, each with a DLQ and the declared redrive count. */
  private createQueues(wiring: Wiring, customerKey: IKey | undefined) {
    const consumerTimeout = (queue: QueueName) =>
      Math.max(0, ...wiring.queueConsumers.filter((c) => c.queue === queue && !c.deadLetters).map(timeoutOf));
    const queues = {} as Record<QueueName, Queue>;
    const deadLetterQueues = {} as Record<QueueName, Queue>;
    for (const declaration of Object.values(queueDeclarations)) {
      const needed = consumerTimeout(declaration.name) * VISIBILITY_TO_TIMEOUT_RATIO;
      if (declaration.visibilityTimeoutSeconds < needed) {
        throw new Error(
          `Queue ${declaration.name}: visibility ${declaration.visibilityTimeoutSeconds} s is below ${VISIBILITY_TO_TIMEOUT_RATIO}× its consumer's timeout (${needed} s)`,
        );
      }
      const dlqConsumerTimeout = Math.max(
        0,
        ...wiring.queueConsumers.filter((c) => c.queue === declaration.name && c.deadLetters).map(timeoutOf),
      );
      const dlq = failureQueue(
        this,
        `${declaration.name}-dlq`,
        customerKey,
        { visibilityTimeout: Duration.seconds(Math.max(30, dlqConsumerTimeout * VISIBILITY_TO_TIMEOUT_RATIO)) },
        `messages of ${declaration.name} received ${declaration.maxReceiveCount} times`,
      );
      deadLetterQueues[declaration.name] = dlq;
      queues[declaration.name] = serviceQueue(this, `${declaration.name}-queue`, customerKey, {
        visibilityTimeout: Duration.seconds(declaration.visibilityTimeoutSeconds),
        retentionPeriod: Duration.seconds(declaration.retentionSeconds),
        deadLetterQueue: { queue: dlq, maxReceiveCount: declaration.maxReceiveCount },
      });
    }

    return { queues, deadLetterQueues };
  }

  /** Every route its own function, behind a caching request authorizer. */
  private createApi(
    wiring: Wiring,
    settings: ServiceSettings,
    { retain, customerKey }: { retain: RemovalPolicy; customerKey: IKey | undefined },
    make: MakeFunction,
  ) {
    const authorizerFunction = make(wiring.authorizer).acknowledge("Serverless-LambdaDLQ", NO_FUNCTION_DLQ.api);
    const authorizer = new HttpLambdaAuthorizer("ApiKeyAuthorizer", authorizerFunction.fn, {
      responseTypes: [HttpLambdaResponseType.SIMPLE],
      identitySource: ["$request.header.Authorization"],
      resultsCacheTtl: Duration.minutes(1),
    });
    const api = new HttpApi(this, "Api", {
      createDefaultStage: false,
      defaultAuthorizer: authorizer,
      corsPreflight: {
        allowOrigins: ["*"],
        allowHeaders: ["authorization", "content-type", "idempotency-key"],
        exposeHeaders: ["idempotent-replayed", "retry-after"],
        allowMethods: [CorsHttpMethod.ANY],
      },
    });
    const accessLogs = new LogGroup(this, "ApiAccessLogs", {
      retention: settings.logRetentionDays,
      removalPolicy: retain,
      encryptionKey: customerKey,
    });
    const stage = new HttpStage(this, "Stage", {
      httpApi: api,
      stageName: settings.stageName,
      autoDeploy: true,
      throttle: { rateLimit: settings.throttlingRateLimit, burstLimit: settings.throttlingBurstLimit },
      accessLogSettings: { destination: new LogGroupLogDestination(accessLogs), format: ACCESS_LOG_FORMAT },
    });
    // One log group for every route's function (each writes its own streams, named after
    // it): a group per route would cost 50 of CloudFormation's 500 resources per stack.
    const routeLogs = new LogGroup(this, "ApiFunctionLogs", {
      retention: settings.logRetentionDays,
      removalPolicy: retain,
      encryptionKey: customerKey,
    });
    // Routes of identical access share a role: a role and a policy per route would cost
    // another hundred of those 500 resources, for the same grants.
    const roles = new Map<string, Role>();
    const roleFor = (access: Access) => {
      const id = accessProfileId(access);
      const role =
        roles.get(id) ?? new Role(this, `ApiRole-${id}`, { assumedBy: new ServicePrincipal("lambda.amazonaws.com") });
      roles.set(id, role);
      return role;
    };
    for (const route of wiring.routes) {
      const fn = make(route, { logGroup: routeLogs, role: roleFor(route.access) }).acknowledge(
        "Serverless-LambdaDLQ",
        NO_FUNCTION_DLQ.api,
      );
      const [deployed] = api.addRoutes({
        path: route.path,
        methods: [HttpMethod[route.method]],
        integration: new HttpLambdaIntegration(`${route.id}-integration`, fn.fn),
        // Public routes (the OpenAPI document) are served without a key, as locally.
        ...(route.public ? { authorizer: new HttpNoneAuthorizer() } : {}),
      });
      if (route.public && deployed) {
        Validations.of(deployed).acknowledge({
          id: "AwsSolutions-APIG4",
          reason: `${route.method} ${route.path} is public by design (wiring: public); it serves static, non-tenant data.`,
        });
      }
    }

    // Routes that call the model or fan out jobs get their own, lower throttle.
    const routeSettings = Object.fromEntries(
      wiring.routes.flatMap((route) =>
        route.throttle
          ? [
              [
                `${route.method} ${route.path}`,
                { ThrottlingRateLimit: route.throttle.ratePerSecond, ThrottlingBurstLimit: route.throttle.burst },
              ],
            ]
          : [],
      ),
    );
    (stage.node.defaultChild as CfnStage).addPropertyOverride("RouteSettings", routeSettings);

    return { api, stage };
  }

  /** Partial batch responses; batch size, window and concurrency from the wiring. */
  private addQueueConsumers(wiring: Wiring, settings: ServiceSettings, queueSet: QueueSet, make: MakeFunction) {
    const { queues, deadLetterQueues } = queueSet;
    for (const consumer of wiring.queueConsumers) {
      const fn = make(consumer)
        .acknowledge("Serverless-LambdaDLQ", NO_FUNCTION_DLQ.queue)
        .acknowledge(
          "Serverless-LambdaEventSourceMappingDestination",
          "SQS event sources take no on-failure destination: the queue's redrive policy dead-letters a message instead.",
        );
      const queue = consumer.deadLetters ? deadLetterQueues[consumer.queue] : queues[consumer.queue];
      // The consumer re-times its own failed messages (ChangeMessageVisibility) by URL.
      if (!consumer.deadLetters) fn.fn.addEnvironment(queueUrlEnvVar(consumer.queue), queue.queueUrl);
      const maxConcurrency =
        consumer.id === "evaluator" ? settings.llmMaxConcurrency : Math.max(2, consumer.maxConcurrency);
      fn.fn.addEventSource(
        new SqsEventSource(queue, {
          batchSize: consumer.batchSize,
          maxBatchingWindow:
            consumer.maxBatchingWindowSeconds > 0 ? Duration.seconds(consumer.maxBatchingWindowSeconds) : undefined,
          maxConcurrency,
          reportBatchItemFailures: true,
          metricsConfig: EVENT_SOURCE_METRICS,
        }),
      );
    }
  }

  /** Filtered, bisecting, with an on-failure destination. */
  private addStreamConsumers(wiring: Wiring, table: Table, streamFailures: Queue, make: MakeFunction) {
    for (const consumer of wiring.streamConsumers) {
      const fn = make(consumer).acknowledge("Serverless-LambdaDLQ", NO_FUNCTION_DLQ.stream);
      fn.fn.addEventSource(
        new DynamoEventSource(table, {
          // A re-created mapping starts at the oldest record the stream keeps (24 h), so none is lost;
          // replaying records already handled is harmless, every stream handler being idempotent.
          startingPosition: StartingPosition.TRIM_HORIZON,
          batchSize: consumer.batchSize,
          maxBatchingWindow: consumer.maxBatchingWindowSeconds
            ? Duration.seconds(consumer.maxBatchingWindowSeconds)
            : undefined,
          bisectBatchOnError: true,
          retryAttempts: consumer.retryAttempts,
          maxRecordAge: Duration.seconds(consumer.maxRecordAgeSeconds),
          reportBatchItemFailures: true,
          metricsConfig: EVENT_SOURCE_METRICS,
          onFailure: new SqsDlq(streamFailures),
          filters: [FilterCriteria.filter(consumer.filterPattern)],
        }),
      );
    }
  }

  /** EventBridge Scheduler schedules. */
  private addSchedules(wiring: Wiring, failures: Queue, make: MakeFunction) {
    for (const schedule of wiring.schedules) {
      const fn = make(schedule).acknowledge("Serverless-LambdaDLQ", NO_FUNCTION_DLQ.schedule);
      // Scheduler invokes asynchronously: Lambda's own retries would otherwise hold a run for hours.
      fn.fn.configureAsyncInvoke({
        retryAttempts: 1,
        maxEventAge: Duration.minutes(5),
        onFailure: new SqsDestination(failures),
      });
      const before = new Set(this.node.children);
      new Schedule(this, `${schedule.id}-schedule`, {
        schedule: ScheduleExpression.expression(schedule.expression),
        // A run that cannot start (throttled while the previous one runs, a Lambda outage) is
        // tried again within minutes; the next tick comes soon anyway. Then it is dead-lettered.
        target: new LambdaInvoke(fn.fn, {
          retryAttempts: 3,
          maxEventAge: Duration.minutes(5),
          deadLetterQueue: failures,
        }),
        description: `Runs ${schedule.id}`,
      });
      // The target's role (created beside the schedule) invokes this one function, any version.
      const functionId = this.getLogicalId(fn.fn.node.defaultChild as CfnFunction);
      for (const role of this.node.children.filter((child) => !before.has(child))) {
        Validations.of(role).acknowledge({
          id: `AwsSolutions-IAM5[Resource::<${functionId}.Arn>:*]`,
          reason: `The scheduler's role may invoke ${schedule.id} (any version of that one function), nothing else.`,
        });
      }
    }
  }

  private addAlarms(
    topic: Topic,
    settings: ServiceSettings,
    queueSet: QueueSet & { streamFailures: Queue; scheduleFailures: Queue },
    { table, api, functions }: { table: Table; api: HttpApi; functions: ServiceFunction[] },
    wiring: Wiring,
  ) {
    const { queues, deadLetterQueues, streamFailures, scheduleFailures } = queueSet;
    const alarm = (id: string, metric: IMetric, threshold: number, description: string) => {
      const created = new Alarm(this, id, {
        metric,
        threshold,
        evaluationPeriods: 1,
        comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: TreatMissingData.NOT_BREACHING,
        alarmDescription: description,
      });
      created.addAlarmAction(new SnsAction(topic));
      return created;
    };
    const fiveMinutes = { period: Duration.minutes(5), statistic: "Sum" };
    // An alarm per function would pass CloudFormation's 500 resources per stack: the
    // functions are alarmed in groups, each alarm on the sum over its group.
    for (let start = 0; start < functions.length; start += FUNCTIONS_PER_ALARM) {
      const group = functions.slice(start, start + FUNCTIONS_PER_ALARM);
      const names = group.map((fn) => fn.node.id).join(", ");
      const summed = (label: string, metricOf: (fn: ServiceFunction) => IMetric) =>
        new MathExpression({
          expression: group.map((_, i) => `m${i}`).join(" + "),
          usingMetrics: Object.fromEntries(group.map((fn, i) => [`m${i}`, metricOf(fn)])),
          label,
          period: fiveMinutes.period,
        });
      const n = start / FUNCTIONS_PER_ALARM + 1;
      alarm(
        `function-errors-${n}`,
        summed("Errors", (fn) => fn.fn.metricErrors(fiveMinutes)),
        0,
        `Invocations failed in one of: ${names}`,
      );
      alarm(
        `function-throttles-${n}`,
        summed("Throttles", (fn) => fn.fn.metricThrottles(fiveMinutes)),
        0,
        `Invocations were throttled in one of: ${names}`,
      );
    }
    for (const [name, queue] of Object.entries(queues) as [QueueName, Queue][]) {
      // Retention expiry deletes a message without dead-lettering it: alarm at half the retention.
      const halfRetention = queueDeclarations[name].retentionSeconds / 2;
      alarm(
        `${name}-oldest-message-age`,
        queue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(5), statistic: "Maximum" }),
        halfRetention,
        `A message has waited on the ${name} queue for half its retention; at full retention it is deleted unprocessed`,
      );
    }
    const deadLetters = [
      ...Object.entries(deadLetterQueues),
      ["stream-failures", streamFailures] as const,
      ["schedule-failures", scheduleFailures] as const,
    ];
    for (const [name, dlq] of deadLetters) {
      alarm(
        `${name}-dlq-depth`,
        dlq.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: "Maximum" }),
        0,
        `Messages in the ${name} dead-letter queue: items could not be processed`,
      );
    }
    for (const consumer of wiring.streamConsumers) {
      const fn = functions.find((f) => f.node.id === consumer.id)?.fn;
      if (!fn) continue;
      alarm(
        `${consumer.id}-iterator-age`,
        fn.metric("IteratorAge", { period: Duration.minutes(1), statistic: "Maximum" }),
        60_000,
        `${consumer.id} is more than a minute behind the table's stream`,
      );
    }
    alarm("api-5xx", api.metricServerError(fiveMinutes), 0, "The API answered with 5xx errors");
    for (const event of ["ReadThrottleEvents", "WriteThrottleEvents"]) {
      alarm(`table-${event}`, table.metric(event, fiveMinutes), 0, `DynamoDB throttled the table (${event})`);
    }
    alarm(
      "scheduler-target-errors",
      new Metric({
        namespace: "AWS/Scheduler",
        metricName: "TargetErrorCount",
        dimensionsMap: { ScheduleGroup: "default" },
        ...fiveMinutes,
      }),
      0,
      "EventBridge Scheduler could not invoke a scheduled function (backfills, reconciler, sweeper, collector)",
    );

    // The dead-letter recorder empties the work DLQ at once: its own counts carry the alarm.
    alarm(
      "dead-lettered-items",
      this.businessMetric(ALARMED_COUNTS.deadLetteredItems),
      0,
      "Work items were dead-lettered (every delivery crashed) and recorded as ERROR",
    );
    alarm(
      "malformed-work-messages",
      this.businessMetric(ALARMED_COUNTS.malformedWorkMessages),
      0,
      "Malformed messages reached the work dead-letter queue and were dropped",
    );
    alarm(
      "reconciler-repairs",
      this.businessMetric(ALARMED_COUNTS.jobsRepaired),
      0,
      "The job reconciler repaired stalled jobs: a dispatch, work item or stream record was lost (see docs/operations.md)",
    );
    alarm(
      "llm-spend",
      this.businessMetric(LLM_SPEND_METRIC, Duration.hours(1)),
      settings.llmSpendAlarmUsdPerHour,
      `Estimated LLM spend passed $${settings.llmSpendAlarmUsdPerHour} in an hour`,
    );
    alarm(
      "llm-rate-limited",
      this.businessMetric(ALARMED_COUNTS.llmRateLimited),
      100,
      "Anthropic answered more than 100 requests in 5 minutes with 429/529: the account's rate limits bind",
    );
  }

  /** One of this stack's own metrics (shared/observability.ts), summed per period. */
  private businessMetric(metricName: string, period = Duration.minutes(5)) {
    return new Metric({
      namespace: this.stackName,
      metricName,
      dimensionsMap: { service: this.stackName },
      statistic: "Sum",
      period,
    });
  }
}

/** Event source mappings report how many events they polled, filtered, invoked and dropped. */
const EVENT_SOURCE_METRICS = { metrics: [MetricType.EVENT_COUNT] };

/** One JSON line per API request: enough to find a failing route, an authorizer error or a tenant's traffic. */
const ACCESS_LOG_FORMAT = AccessLogFormat.custom(
  JSON.stringify({
    requestId: "$context.requestId",
    time: "$context.requestTime",
    routeKey: "$context.routeKey",
    status: "$context.status",
    latencyMs: "$context.responseLatency",
    integrationLatencyMs: "$context.integrationLatency",
    integrationError: "$context.integrationErrorMessage",
    authorizerError: "$context.authorizer.error",
    orgId: "$context.authorizer.orgId",
    sourceIp: "$context.identity.sourceIp",
    responseLength: "$context.responseLength",
  }),
);

/** CloudWatch takes at most 10 metrics in an alarm's math expression. */
const FUNCTIONS_PER_ALARM = 10;

export const defaultSettings: ServiceSettings = {
  /** `$default` serves the API at the root: https://…/v1/call. */
  stageName: "$default",
  judgeModel: DEFAULT_JUDGE_MODEL,
  llmMaxConcurrency: DEFAULT_LLM_MAX_CONCURRENCY,
  logRetentionDays: RetentionDays.ONE_MONTH,
  deletionProtection: true,
  throttlingRateLimit: 100,
  throttlingBurstLimit: 200,
  llmSpendAlarmUsdPerHour: 50,
};
