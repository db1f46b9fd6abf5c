/**
 * The CDK app, synthesized offline: every wiring entry deployed, least privilege, no
 * secret in the environment, cdk-nag's AwsSolutions and Serverless packs clean (or
 * acknowledged with a reason). Bundling is skipped here (`aws:cdk:bundling-stacks`); `npm run synth` bundles.
 */
import { App, Stack, Validations } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import type { Context } from "aws-lambda";
import { AwsSolutionsChecks, ServerlessChecks } from "cdk-nag";
import { beforeAll, describe, expect, it } from "vitest";
import { buildApp } from "../../infra/app.ts";
import { invokeHandler } from "../../infra/local/invoke.ts";
import { accessProfileId, defaultSettings, ServiceStack } from "../../infra/stack/service-stack.ts";
import { configKeys, envVarOf } from "../../shared/config.ts";
import { queueDeclarations } from "../../shared/table.ts";
import { timeoutOf, type Wiring, wiring } from "../../shared/wiring.ts";

const noBundling = { "aws:cdk:bundling-stacks": [] };
const projectRoot = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

type Resource = { Type: string; Properties: Record<string, any> };
let template: Template;
let resources: Record<string, Resource>;
let stack: ServiceStack;

const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
/** The Lambda function resource of a wiring entry (construct path `<id>/Function`). */
function functionOf(id: string): Resource {
  const match = ofType("AWS::Lambda::Function").find(([logicalId]) =>
    logicalId.startsWith(`${id.replaceAll("-", "")}Function`),
  );
  if (!match) throw new Error(`no function for ${id}`);
  return match[1];
}
const logicalIdOf = (id: string) =>
  ofType("AWS::Lambda::Function").find(([logicalId]) => logicalId.startsWith(`${id.replaceAll("-", "")}Function`))?.[0];

beforeAll(() => {
  const built = buildApp(new App({ context: { ...noBundling, alarmEmail: "ops@example.com" } }));
  stack = built.stack;
  template = Template.fromStack(stack);
  resources = template.toJSON().Resources;
});

describe("the CDK app", () => {
  it("gives a function that names no memory or timeout what the local runtime gives it", async () => {
    const route = wiring.routes.find((entry) => entry.id === "api-list-calls");
    if (!route || route.memoryMb !== undefined || route.timeoutSeconds !== undefined)
      throw new Error("fixture changed");
    const deployed = functionOf("api-list-calls").Properties;
    const seen = (await invokeHandler(
      async () => async (_event: unknown, context: Context) => ({
        memory: Number(context.memoryLimitInMB),
        secondsLeft: Math.round(context.getRemainingTimeInMillis() / 1000),
      }),
      route,
      {},
      "us-east-1",
    )) as { memory: number; secondsLeft: number };
    expect(seen).toEqual({ memory: deployed.MemorySize, secondsLeft: deployed.Timeout });
  });

  it("sets only environment variables the functions read, under the names config() reads", () => {
    const known = new Set([
      ...configKeys.map(envVarOf),
      "NODE_OPTIONS",
      "LOG_LEVEL",
      "POWERTOOLS_SERVICE_NAME",
      "POWERTOOLS_METRICS_NAMESPACE",
    ]);
    const names = ofType("AWS::Lambda::Function").flatMap(([, r]) =>
      Object.keys(r.Properties.Environment?.Variables ?? {}),
    );
    expect([...new Set(names)].filter((name) => !known.has(name))).toEqual([]);
  });

  it("deploys every route of the wiring as its own function, behind the authorizer unless public", () => {
    const routes = ofType("AWS::ApiGatewayV2::Route").map(([, r]) => r.Properties);
    for (const route of wiring.routes) {
      const routeKey = `${route.method} ${route.path}`;
      const deployed = routes.find((r) => r.RouteKey === routeKey);
      expect(deployed, routeKey).toBeDefined();
      // Public routes (the OpenAPI document) skip the authorizer, as they do locally.
      expect(deployed?.AuthorizationType, routeKey).toBe(route.public ? "NONE" : "CUSTOM");
      expect(functionOf(route.id)).toBeDefined();
    }
    expect(routes).toHaveLength(wiring.routes.length);
    template.hasResourceProperties("AWS::ApiGatewayV2::Authorizer", {
      AuthorizerType: "REQUEST",
      EnableSimpleResponses: true,
      IdentitySource: ["$request.header.Authorization"],
      AuthorizerResultTtlInSeconds: 60,
    });
    template.hasResourceProperties("AWS::ApiGatewayV2::Stage", {
      DefaultRouteSettings: Match.objectLike({ ThrottlingRateLimit: 100, ThrottlingBurstLimit: 200 }),
    });
  });

  it("runs every function on nodejs24.x, arm64, traced, with a log group (the API's functions share one)", () => {
    const functions = ofType("AWS::Lambda::Function").filter(([, r]) => r.Properties.Runtime?.startsWith("nodejs"));
    expect(functions.length).toBe(
      1 + wiring.routes.length + wiring.queueConsumers.length + wiring.streamConsumers.length + wiring.schedules.length,
    );
    for (const [, fn] of functions) {
      expect(fn.Properties).toMatchObject({
        Runtime: "nodejs24.x",
        Architectures: ["arm64"],
        TracingConfig: { Mode: "Active" },
        LoggingConfig: { LogGroup: expect.anything() },
      });
    }
    for (const [, group] of ofType("AWS::Logs::LogGroup")) expect(group.Properties.RetentionInDays).toBe(30);
    const routeGroups = new Set(
      functions
        .filter(([id]) => id.startsWith("api") && !id.startsWith("apiauthorizer"))
        .map(([, fn]) => JSON.stringify(fn.Properties.LoggingConfig.LogGroup)),
    );
    expect(routeGroups.size).toBe(1);
    // CloudFormation's limit per stack: a route costs four resources (function, integration,
    // route, permission) and routes share roles, so keep room for more.
    expect(Object.keys(template.toJSON().Resources).length).toBeLessThan(440);
  });

  it("gives the routes of identical access one role, and routes of different access different roles", () => {
    const roleOf = (id: string) => (functionOf(id).Properties.Role["Fn::GetAtt"] as string[])[0];
    const rolesByProfile = new Map<string, Set<string | undefined>>();
    for (const route of wiring.routes) {
      const profile = accessProfileId(route.access);
      rolesByProfile.set(profile, (rolesByProfile.get(profile) ?? new Set()).add(roleOf(route.id)));
    }
    for (const [profile, roles] of rolesByProfile) expect(roles.size, profile).toBe(1);
    const distinct = new Set([...rolesByProfile.values()].flatMap((roles) => [...roles]));
    expect(distinct.size).toBe(rolesByProfile.size);
    expect(rolesByProfile.size).toBeLessThan(wiring.routes.length / 3);
    // Workers keep roles of their own.
    expect(roleOf("evaluator")).not.toBe(roleOf("dispatcher"));
  });

  it("builds the table from the shared declaration: on demand, PITR, stream, TTL, protected, a lean index", () => {
    template.hasResourceProperties("AWS::DynamoDB::Table", {
      KeySchema: [
        { AttributeName: "pk", KeyType: "HASH" },
        { AttributeName: "sk", KeyType: "RANGE" },
      ],
      BillingMode: "PAY_PER_REQUEST",
      StreamSpecification: { StreamViewType: "NEW_AND_OLD_IMAGES" },
      TimeToLiveSpecification: { AttributeName: "expiresAt", Enabled: true },
      // Keys and three small attributes, not ALL: a job's counters and a value's reasoning stay out.
      GlobalSecondaryIndexes: [
        Match.objectLike({
          IndexName: "gsi1",
          Projection: { ProjectionType: "INCLUDE", NonKeyAttributes: ["status", "captureStatus", "metricVersion"] },
        }),
      ],
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      DeletionProtectionEnabled: true,
    });
  });

  it("gives each queue consumer an event source with partial batch responses and visibility ≥ 6× its timeout", () => {
    const mappings = ofType("AWS::Lambda::EventSourceMapping").map(([, r]) => r.Properties);
    const queues = ofType("AWS::SQS::Queue");
    for (const consumer of wiring.queueConsumers) {
      const mapping = mappings.find((m) => m.FunctionName?.Ref === logicalIdOf(consumer.id));
      expect(mapping, consumer.id).toMatchObject({
        BatchSize: consumer.batchSize,
        FunctionResponseTypes: ["ReportBatchItemFailures"],
        ScalingConfig: {
          MaximumConcurrency: consumer.id === "evaluator" ? defaultSettings.llmMaxConcurrency : expect.any(Number),
        },
      });
      const queueLogicalId = mapping?.EventSourceArn["Fn::GetAtt"][0];
      const queue = queues.find(([logicalId]) => logicalId === queueLogicalId)?.[1];
      const timeout = functionOf(consumer.id).Properties.Timeout;
      expect(queue?.Properties.VisibilityTimeout).toBeGreaterThanOrEqual(6 * timeout);
      if (consumer.deadLetters) {
        // A dead-letter queue: the queue it serves redrives into it.
        const served = queues.find(
          ([, q]) => q.Properties.RedrivePolicy?.deadLetterTargetArn?.["Fn::GetAtt"]?.[0] === queueLogicalId,
        );
        expect(served, `${consumer.id} consumes the dead letters of a queue`).toBeDefined();
        expect(served?.[1].Properties.RedrivePolicy.maxReceiveCount).toBe(
          queueDeclarations[consumer.queue].maxReceiveCount,
        );
      } else {
        expect(queue?.Properties.RedrivePolicy.maxReceiveCount).toBe(queueDeclarations[consumer.queue].maxReceiveCount);
      }
    }
    // The evaluator re-sends items to its own queue and knows the attempt budget.
    expect(functionOf("evaluator").Properties.Environment.Variables).toMatchObject({
      WORK_QUEUE_URL: expect.anything(),
      WORK_MAX_RECEIVE_COUNT: String(queueDeclarations.work.maxReceiveCount),
    });
    // The dead-letter recorder sends nowhere.
    expect(functionOf("dead-letter-recorder").Properties.Environment.Variables.WORK_QUEUE_URL).toBeUndefined();
  });

  it("reads the table's stream with at most two mappings, as DynamoDB Streams allows per shard", () => {
    const streamMappings = ofType("AWS::Lambda::EventSourceMapping").filter(
      ([, r]) => r.Properties.EventSourceArn?.["Fn::GetAtt"]?.[1] === "StreamArn",
    );
    expect(streamMappings.length).toBeGreaterThan(0);
    expect(streamMappings.length).toBeLessThanOrEqual(2);
    expect(streamMappings).toHaveLength(wiring.streamConsumers.length);
  });

  it("names the stream-failures queue in an output, for the replay script", () => {
    const [queueId] = ofType("AWS::SQS::Queue").find(([logicalId]) => logicalId.startsWith("streamfailures")) ?? [];
    expect(queueId).toBeDefined();
    template.hasOutput("StreamFailuresQueueUrl", { Value: { Ref: queueId } });
  });

  it("feeds the stream consumers from the trim horizon with a filter, bisection, retries and an on-failure destination", () => {
    for (const consumer of wiring.streamConsumers) {
      const mapping = ofType("AWS::Lambda::EventSourceMapping")
        .map(([, r]) => r.Properties)
        .find((m) => m.FunctionName?.Ref === logicalIdOf(consumer.id));
      expect(mapping, consumer.id).toMatchObject({
        // A re-created mapping starts from the oldest record still kept (24 h), losing none.
        StartingPosition: "TRIM_HORIZON",
        BisectBatchOnFunctionError: true,
        MaximumRetryAttempts: consumer.retryAttempts,
        MaximumRecordAgeInSeconds: consumer.maxRecordAgeSeconds,
        FunctionResponseTypes: ["ReportBatchItemFailures"],
        DestinationConfig: { OnFailure: { Destination: expect.anything() } },
        FilterCriteria: { Filters: [{ Pattern: JSON.stringify(consumer.filterPattern) }] },
      });
      // The rollup applier gathers batches for a few seconds, so more values share an update.
      expect(mapping?.MaximumBatchingWindowInSeconds, consumer.id).toBe(consumer.maxBatchingWindowSeconds);
    }
    expect(wiring.streamConsumers.find((consumer) => consumer.id === "rollup-applier")?.maxBatchingWindowSeconds).toBe(
      5,
    );
  });

  it("never allows a wildcard action, and never grants table or queue access beyond the wiring", () => {
    for (const [, policy] of ofType("AWS::IAM::Policy")) {
      for (const statement of policy.Properties.PolicyDocument.Statement) {
        const actions: string[] = [statement.Action].flat();
        for (const action of actions) expect(action).not.toMatch(/^(\*|dynamodb:\*|sqs:\*|secretsmanager:\*)$/);
      }
    }
    // Statements bound to some keys (dynamodb:LeadingKeys) are checked in the next test.
    const policyText = (id: string) => {
      const roleId = (functionOf(id).Properties.Role["Fn::GetAtt"] as string[])[0];
      return JSON.stringify(
        ofType("AWS::IAM::Policy")
          .filter(([, p]) => p.Properties.Roles.some((r: { Ref: string }) => r.Ref === roleId))
          .flatMap(([, p]) => p.Properties.PolicyDocument.Statement)
          .filter((statement: { Condition?: unknown }) => statement.Condition === undefined),
      );
    };
    // Read-only routes cannot write; only the routes that create jobs can send to the dispatch queue.
    expect(policyText("api-get-call")).not.toMatch(/dynamodb:(PutItem|UpdateItem|DeleteItem|BatchWriteItem)/);
    expect(policyText("api-get-call")).not.toMatch(/sqs:SendMessage/);
    expect(policyText("api-create-collection-job")).toMatch(/sqs:SendMessage/);
    expect(policyText("api-create-call")).toMatch(/dynamodb:PutItem/);
    // Only functions that call the LLM may read the Anthropic secret.
    for (const entry of [...wiring.routes, ...wiring.queueConsumers, ...wiring.streamConsumers]) {
      const readsSecret = policyText(entry.id).includes("secretsmanager:GetSecretValue");
      expect(readsSecret, entry.id).toBe(entry.access.secrets?.includes("anthropic") ?? false);
    }
  });

  it("grants each function exactly the table actions its access needs, and the authorizer only API-key items", () => {
    const read = ["dynamodb:BatchGetItem", "dynamodb:ConditionCheckItem", "dynamodb:GetItem", "dynamodb:Query"];
    const write = ["dynamodb:BatchWriteItem", "dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:UpdateItem"];
    const streamActions = /^dynamodb:(DescribeStream|GetRecords|GetShardIterator|ListStreams)$/;
    const statementsOf = (id: string) => {
      const roleId = (functionOf(id).Properties.Role["Fn::GetAtt"] as string[])[0];
      return ofType("AWS::IAM::Policy")
        .filter(([, p]) => p.Properties.Roles.some((r: { Ref: string }) => r.Ref === roleId))
        .flatMap(
          ([, p]) => p.Properties.PolicyDocument.Statement as { Action: string | string[]; Condition?: unknown }[],
        );
    };
    // Unconditioned statements: those bound to some keys are checked below.
    const tableActions = (id: string, bound = false) =>
      [
        ...new Set(
          statementsOf(id)
            .filter((s) => bound || s.Condition === undefined)
            .flatMap((s) => [s.Action].flat())
            .filter((a) => a.startsWith("dynamodb:") && !streamActions.test(a)),
        ),
      ].sort();
    for (const entry of [...wiring.routes, ...wiring.queueConsumers, ...wiring.streamConsumers, ...wiring.schedules]) {
      const byAccess: Record<string, string[]> = { read, readWrite: [...read, ...write].sort() };
      const expected = byAccess[entry.access.table ?? "none"] ?? [];
      expect(tableActions(entry.id), entry.id).toEqual(expected);
    }
    expect(tableActions(wiring.authorizer.id, true)).toEqual(["dynamodb:GetItem"]);
    const [authorizerRead] = statementsOf(wiring.authorizer.id).filter((s) =>
      [s.Action].flat().includes("dynamodb:GetItem"),
    );
    expect(authorizerRead?.Condition).toEqual({
      "ForAllValues:StringLike": { "dynamodb:LeadingKeys": ["APIKEY#*"] },
    });
    // Every route a key calls may read and update its organization's API rate item, and no other item that way;
    // so may a public route that counts requests against an organization (a platform's signed webhooks).
    for (const route of wiring.routes) {
      const rateStatements = statementsOf(route.id).filter((s) => s.Condition !== undefined);
      expect(rateStatements, route.id).toEqual(
        (route.public || route.staticFiles) && !route.access.apiRateLimit
          ? []
          : [
              expect.objectContaining({
                Action: ["dynamodb:GetItem", "dynamodb:UpdateItem"],
                Condition: { "ForAllValues:StringLike": { "dynamodb:LeadingKeys": ["ORG#*#APIRATE"] } },
              }),
            ],
      );
    }
  });

  it("logs JSON everywhere: functions at an application log level, API access logs with route, status, latency, errors and org, event source metrics on", () => {
    for (const [id, fn] of ofType("AWS::Lambda::Function")) {
      expect(fn.Properties.LoggingConfig, id).toMatchObject({ LogFormat: "JSON", ApplicationLogLevel: "INFO" });
    }
    const [, stage] = ofType("AWS::ApiGatewayV2::Stage")[0] ?? [];
    const format = JSON.parse(stage?.Properties.AccessLogSettings.Format ?? "{}");
    expect(format).toMatchObject({
      requestId: "$context.requestId",
      routeKey: "$context.routeKey",
      status: "$context.status",
      latencyMs: "$context.responseLatency",
      integrationError: "$context.integrationErrorMessage",
      authorizerError: "$context.authorizer.error",
      orgId: "$context.authorizer.orgId",
    });
    for (const [id, mapping] of ofType("AWS::Lambda::EventSourceMapping")) {
      expect(mapping.Properties.MetricsConfig, id).toEqual({ Metrics: ["EventCount"] });
    }
  });

  it("ends every route's function before the HTTP API's 30-second integration limit", () => {
    for (const route of wiring.routes) expect(timeoutOf(route), route.id).toBeLessThan(30);
  });

  it("throttles the expensive routes on their own, below the stage's limits", () => {
    const [, stage] = ofType("AWS::ApiGatewayV2::Stage")[0] ?? [];
    const settings = stage?.Properties.RouteSettings as Record<
      string,
      { ThrottlingRateLimit: number; ThrottlingBurstLimit: number }
    >;
    const throttled = wiring.routes.filter((route) => route.throttle);
    expect(throttled.map((route) => `${route.method} ${route.path}`).sort()).toEqual(
      [
        "POST /v1/metric/collection-jobs",
        "POST /v1/metric/collection-jobs/{jobId}/retry",
        "POST /v1/metric/playground",
        "POST /v1/metric/playground/judge-modes",
      ].sort(),
    );
    for (const route of throttled) {
      const set = settings[`${route.method} ${route.path}`];
      expect(set, route.id).toEqual({
        ThrottlingRateLimit: route.throttle?.ratePerSecond,
        ThrottlingBurstLimit: route.throttle?.burst,
      });
      expect(set?.ThrottlingRateLimit).toBeLessThan(defaultSettings.throttlingRateLimit);
    }
  });

  it("keeps the Anthropic key out of every environment: only the secret's ARN, only where needed", () => {
    for (const [, fn] of ofType("AWS::Lambda::Function")) {
      const variables: Record<string, unknown> = fn.Properties.Environment?.Variables ?? {};
      expect(Object.keys(variables)).not.toContain("ANTHROPIC_API_KEY");
      const secretId = variables.ANTHROPIC_API_KEY_SECRET_ID;
      if (secretId !== undefined) expect(secretId).toEqual({ Ref: expect.stringMatching(/^AnthropicKey/) });
      expect(JSON.stringify(variables)).not.toMatch(/sk-ant-/);
    }
    expect(functionOf("evaluator").Properties.Environment.Variables.ANTHROPIC_API_KEY_SECRET_ID).toBeDefined();
    expect(functionOf("api-get-call").Properties.Environment.Variables.ANTHROPIC_API_KEY_SECRET_ID).toBeUndefined();
  });

  it("alarms on every function's errors and throttles, queue age, dead letters, stream lag, table and scheduler failures, repairs and LLM spend and rate limits", () => {
    const alarms = ofType("AWS::CloudWatch::Alarm").map(([, r]) => r.Properties);
    const byMetric = (name: string) => alarms.filter((a) => a.MetricName === name);
    const functions = ofType("AWS::Lambda::Function").filter(([id]) => !id.startsWith("LogRetention")).length;
    // Every dead-letter queue, the stream-failures queue and the schedule-failures queue.
    expect(byMetric("ApproximateNumberOfMessagesVisible")).toHaveLength(Object.keys(queueDeclarations).length + 2);
    // Retention expiry deletes a message without dead-lettering it: the oldest message's age alarms first.
    const ageAlarms = byMetric("ApproximateAgeOfOldestMessage");
    expect(ageAlarms).toHaveLength(Object.keys(queueDeclarations).length);
    for (const [name, queue] of Object.entries(queueDeclarations)) {
      const age = ageAlarms.find((a) => JSON.stringify(a.Dimensions).includes(`${name}queue`));
      expect(age?.Threshold, name).toBeLessThan(queue.retentionSeconds);
    }
    // Every function's errors and throttles, summed in groups (CloudFormation's 500 resources per stack).
    const alarmedFunctions = (metricName: string) =>
      alarms
        .flatMap((a) => (a.Metrics ?? []) as { MetricStat?: { Metric: { MetricName: string; Dimensions: unknown } } }[])
        .filter((m) => m.MetricStat?.Metric.MetricName === metricName)
        .map((m) => JSON.stringify(m.MetricStat?.Metric.Dimensions));
    for (const metricName of ["Errors", "Throttles"]) {
      expect(new Set(alarmedFunctions(metricName)).size, metricName).toBe(functions);
    }
    expect(byMetric("IteratorAge")).toHaveLength(wiring.streamConsumers.length);
    expect(byMetric("5xx")).toHaveLength(1);
    expect(byMetric("ReadThrottleEvents")).toHaveLength(1);
    expect(byMetric("WriteThrottleEvents")).toHaveLength(1);
    expect(byMetric("TargetErrorCount")).toHaveLength(1);
    // The dead-letter recorder empties the work DLQ: its counts of what it found there alarm.
    expect(byMetric("DeadLetteredItems")).toHaveLength(1);
    expect(byMetric("MalformedWorkMessages")).toHaveLength(1);
    expect(byMetric("JobsRepaired")).toHaveLength(1);
    expect(byMetric("EstimatedCostUsd")).toHaveLength(1);
    expect(byMetric("LlmRateLimited")).toHaveLength(1);
    const topic = ofType("AWS::SNS::Topic")[0]?.[0];
    for (const alarm of alarms) expect(alarm.AlarmActions).toEqual([{ Ref: topic }]);
  });

  it("has a dashboard grouped by pipeline stage that shows every function, queue and alarmed metric", () => {
    const dashboards = ofType("AWS::CloudWatch::Dashboard");
    expect(dashboards).toHaveLength(1);
    // The body is a joined string with references: each becomes @<logical id>@.
    const parts = dashboards[0]?.[1].Properties.DashboardBody["Fn::Join"][1] as unknown[];
    const body = parts
      .map((part) =>
        typeof part === "string"
          ? part
          : `@${(part as { Ref?: string }).Ref ?? (part as { "Fn::GetAtt": string[] })["Fn::GetAtt"]?.[0]}@`,
      )
      .join("");
    const widgets = JSON.parse(body).widgets as { type: string; properties: { markdown?: string } }[];
    const headings = widgets.flatMap((w) =>
      w.type === "text" ? [/^## (.+)\n/.exec(w.properties.markdown ?? "")?.[1]] : [],
    );
    expect(headings).toEqual(["API", "Dispatch", "Evaluate", "LLM", "Table stream", "Webhooks", "Schedules", "Table"]);
    const unseen = (type: string) =>
      ofType(type)
        .map(([id]) => id)
        .filter((id) => !body.includes(`@${id}@`));
    expect(unseen("AWS::Lambda::Function")).toEqual([]);
    expect(unseen("AWS::SQS::Queue")).toEqual([]);
    const alarmed = ["ItemsEvaluated", "EstimatedCostUsd", "InputTokens", "IteratorAge", "TargetErrorCount"];
    for (const metric of [...alarmed, "DeadLetteredItems", "MalformedWorkMessages", "JobsRepaired", "LlmRateLimited"]) {
      expect(body).toContain(metric);
    }
    for (const metric of [
      "5xx",
      "Latency",
      "ReadThrottleEvents",
      "WriteThrottleEvents",
      "ApproximateAgeOfOldestMessage",
    ]) {
      expect(body).toContain(metric);
    }
  });

  it("always creates the alarm topic, names it in an output, and subscribes alarmEmail only when given", () => {
    expect(ofType("AWS::SNS::Subscription").map(([, r]) => r.Properties)).toEqual([
      expect.objectContaining({ Protocol: "email", Endpoint: "ops@example.com" }),
    ]);
    const bare = Template.fromStack(buildApp(new App({ context: noBundling })).stack).toJSON();
    const bareOfType = (type: string) =>
      Object.entries(bare.Resources as Record<string, Resource>).filter(([, r]) => r.Type === type);
    const [topic] = bareOfType("AWS::SNS::Topic");
    expect(topic).toBeDefined();
    expect(bareOfType("AWS::SNS::Subscription")).toHaveLength(0);
    for (const [, alarm] of bareOfType("AWS::CloudWatch::Alarm")) {
      expect(alarm.Properties.AlarmActions).toEqual([{ Ref: topic?.[0] }]);
    }
    expect(Object.values(bare.Outputs ?? {})).toContainEqual(expect.objectContaining({ Value: { Ref: topic?.[0] } }));
  });

  it("never overlaps a schedule's runs, retries a failed invocation a few times within minutes, then dead-letters it", () => {
    const schedules = ofType("AWS::Scheduler::Schedule").map(([, r]) => r.Properties);
    expect(schedules).toHaveLength(wiring.schedules.length);
    const dlqs = new Set<string>();
    for (const schedule of schedules) {
      expect(schedule.Target.RetryPolicy.MaximumRetryAttempts).toBeGreaterThanOrEqual(2);
      expect(schedule.Target.RetryPolicy.MaximumRetryAttempts).toBeLessThanOrEqual(5);
      expect(schedule.Target.RetryPolicy.MaximumEventAgeInSeconds).toBeLessThanOrEqual(600);
      dlqs.add(JSON.stringify(schedule.Target.DeadLetterConfig.Arn));
    }
    expect(dlqs.size).toBe(1);
    // Scheduler invokes asynchronously: Lambda's own retries stay within minutes and fail to the same queue.
    const invokeConfigs = ofType("AWS::Lambda::EventInvokeConfig").map(([, r]) => r.Properties);
    expect(invokeConfigs).toHaveLength(wiring.schedules.length);
    for (const config of invokeConfigs) {
      expect(config.MaximumRetryAttempts).toBeLessThanOrEqual(1);
      expect(config.MaximumEventAgeInSeconds).toBeLessThanOrEqual(600);
      expect(dlqs.has(JSON.stringify(config.DestinationConfig.OnFailure.Destination))).toBe(true);
    }
    // The local scheduler skips a tick while a run is in progress; so does reserved concurrency 1.
    for (const entry of wiring.schedules) {
      expect(functionOf(entry.id).Properties.ReservedConcurrentExecutions, entry.id).toBe(1);
    }
    for (const route of wiring.routes.slice(0, 3)) {
      expect(functionOf(route.id).Properties.ReservedConcurrentExecutions).toBeUndefined();
    }
    const alarms = ofType("AWS::CloudWatch::Alarm").map(([, r]) => JSON.stringify(r.Properties.Dimensions ?? []));
    const [dlq] = [...dlqs];
    const dlqLogicalId = JSON.parse(dlq ?? "{}")["Fn::GetAtt"]?.[0];
    expect(alarms.some((dimensions) => dimensions.includes(dlqLogicalId))).toBe(true);
  });

  const keyArn = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555";
  it.each([
    ["AwsSolutions", AwsSolutionsChecks, {}],
    ["Serverless", ServerlessChecks, {}],
    ["AwsSolutions", AwsSolutionsChecks, { kmsKeyArn: keyArn, anthropicSecretName: "prod/anthropic" }],
  ])(
    "passes cdk-nag's %s checks (settings %j), each finding acknowledged on its own resource with a reason",
    (_pack, Pack, context) => {
      const target =
        Object.keys(context).length === 0 ? stack : buildApp(new App({ context: { ...noBundling, ...context } })).stack;
      const report = new Pack(target).validateScope(target);
      const unacknowledged = report.violations.map(
        (v) => `${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(", ")}`,
      );
      expect(unacknowledged).toEqual([]);
      expect(report.success).toBe(true);
      const acknowledgments = (scope: { node: { metadata: { type: string; data: unknown }[] } }) =>
        scope.node.metadata.filter((entry) => entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY);
      // Never stack-wide: each acknowledgment sits on the resource (or function) it is about.
      expect(acknowledgments(target)).toEqual([]);
      let reasons = 0;
      for (const scope of target.node.findAll()) {
        for (const entry of acknowledgments(scope)) {
          for (const reason of Object.values(entry.data as Record<string, string>)) {
            expect(reason.length, scope.node.path).toBeGreaterThan(20);
            reasons++;
          }
        }
      }
      // Every function acknowledges at least its Lambda DLQ and X-Ray findings.
      expect(reasons).toBeGreaterThan(2 * ofType("AWS::Lambda::Function").length);
    },
  );
});

describe("CDK app settings", () => {
  const synth = (context: Record<string, unknown>, variant?: Wiring) => {
    const app = new App({ context: { ...noBundling, ...context } });
    if (!variant) return Template.fromStack(buildApp(app).stack);
    const custom = new ServiceStack(app, "Variant", { settings: defaultSettings, wiring: variant, projectRoot });
    return Template.fromStack(custom);
  };

  it("maps llmMaxConcurrency to the evaluator's event source and takes a customer KMS key", () => {
    const template = synth({
      llmMaxConcurrency: 7,
      kmsKeyArn: "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555",
    });
    template.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
      BatchSize: 20,
      ScalingConfig: { MaximumConcurrency: 7 },
    });
    template.hasResourceProperties("AWS::DynamoDB::Table", {
      SSESpecification: { SSEEnabled: true, SSEType: "KMS", KMSMasterKeyId: Match.stringLikeRegexp("^arn:aws:kms:") },
    });
  });

  it("protects the queues, log groups and secret with a customer KMS key when given; AWS-owned keys otherwise", () => {
    const keyArn = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555";
    const withKey = synth({ kmsKeyArn: keyArn }).toJSON().Resources as Record<string, Resource>;
    const of = (all: Record<string, Resource>, type: string) =>
      Object.values(all)
        .filter((r) => r.Type === type)
        .map((r) => r.Properties);
    for (const queue of of(withKey, "AWS::SQS::Queue")) expect(queue.KmsMasterKeyId).toBe(keyArn);
    for (const logGroup of of(withKey, "AWS::Logs::LogGroup")) expect(logGroup.KmsKeyId).toBe(keyArn);
    for (const secret of of(withKey, "AWS::SecretsManager::Secret")) expect(secret.KmsKeyId).toBe(keyArn);
    // Without a key: AWS-owned keys, which cost nothing (no AWS-managed key's KMS requests).
    const [table] = of(resources, "AWS::DynamoDB::Table");
    expect(table?.SSESpecification?.SSEType).toBeUndefined();
    for (const queue of of(resources, "AWS::SQS::Queue")) expect(queue.SqsManagedSseEnabled).toBe(true);
  });

  it("rejects settings AWS would reject, before deploying", () => {
    expect(() => synth({ llmMaxConcurrency: 1 })).toThrow(/llmMaxConcurrency/);
    expect(() => synth({ logRetentionDays: 31 })).toThrow(/logRetentionDays/);
    expect(() => synth({ throttlingRateLimit: "abc" })).toThrow(/throttlingRateLimit/);
    expect(() => synth({ throttlingBurstLimit: 2.5 })).toThrow(/throttlingBurstLimit/);
    expect(() => synth({ llmSpendAlarmUsdPerHour: -1 })).toThrow(/llmSpendAlarmUsdPerHour/);
    expect(() => synth({ tableMaxWriteUnits: "0" })).toThrow(/tableMaxWriteUnits/);
  });

  it("caps the table's on-demand throughput when asked, to bound the bill", () => {
    synth({ tableMaxWriteUnits: 500, tableMaxReadUnits: 1000 }).hasResourceProperties("AWS::DynamoDB::Table", {
      OnDemandThroughput: { MaxWriteRequestUnits: 500, MaxReadRequestUnits: 1000 },
    });
    const [, table] = ofType("AWS::DynamoDB::Table")[0] ?? [];
    expect(table?.Properties.OnDemandThroughput).toBeUndefined();
  });

  it("deploys the wiring's schedules with EventBridge Scheduler", () => {
    const variant: Wiring = {
      ...wiring,
      schedules: [
        {
          id: "nightly",
          entry: "functions/workers/stream-router.ts",
          access: { table: "read" },
          expression: "cron(0 2 * * ? *)",
        },
      ],
    };
    const template = synth({}, variant);
    template.hasResourceProperties("AWS::Scheduler::Schedule", { ScheduleExpression: "cron(0 2 * * ? *)" });
  });

  it("refuses a queue whose visibility is below 6× its consumer's timeout", () => {
    const slow: Wiring = {
      ...wiring,
      queueConsumers: wiring.queueConsumers.map((c) => (c.id === "evaluator" ? { ...c, timeoutSeconds: 900 } : c)),
    };
    expect(() => synth({}, slow)).toThrow(/visibility 1800 s is below 6× its consumer's timeout/);
  });

  it("keeps two stacks in one account apart: metrics namespace and service from the stack name, tags", () => {
    const [blue, green] = ["Blue", "Green"].map((stackName) => synth({ stackName }).toJSON().Resources);
    for (const [name, resources] of [
      ["Blue", blue],
      ["Green", green],
    ] as const) {
      const all = Object.values(resources as Record<string, Resource>);
      const environments = all
        .filter((r) => r.Type === "AWS::Lambda::Function")
        .map((r) => r.Properties.Environment.Variables);
      for (const environment of environments) {
        expect(environment).toMatchObject({ POWERTOOLS_SERVICE_NAME: name, POWERTOOLS_METRICS_NAMESPACE: name });
      }
      const ownMetricAlarms = all.filter(
        (r) => r.Type === "AWS::CloudWatch::Alarm" && JSON.stringify(r.Properties).includes("LlmRateLimited"),
      );
      expect(ownMetricAlarms).not.toHaveLength(0);
      for (const alarm of ownMetricAlarms) {
        expect(JSON.stringify(alarm.Properties)).toContain(`"Namespace":"${name}"`);
        expect(JSON.stringify(alarm.Properties)).toContain(`{"Name":"service","Value":"${name}"}`);
      }
      const table = all.find((r) => r.Type === "AWS::DynamoDB::Table");
      expect(table?.Properties.Tags).toEqual(
        expect.arrayContaining([
          { Key: "app", Value: "metric-collection" },
          { Key: "stack", Value: name },
        ]),
      );
    }
  });

  it("keeps the stack free of a hard-coded account or region (synth works offline)", () => {
    expect(Stack.of(stack).account).toMatch(/Token|AWS::AccountId/);
  });
});
