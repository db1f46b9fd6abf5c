/**
 * The CDK app: `npm run synth` / `npx cdk deploy`. Settings come from CDK context
 * (`cdk.json` or `-c key=value`); cdk-nag's AwsSolutions checks run on every synth.
 */
import { App, Validations } from "aws-cdk-lib";
import { RetentionDays } from "aws-cdk-lib/aws-logs";
import { AwsSolutionsChecks } from "cdk-nag";
import { suppressReviewedFindings } from "./stack/nag-suppressions.ts";
import { defaultSettings, type ServiceSettings, ServiceStack } from "./stack/service-stack.ts";

const projectRoot = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

export function settingsFromContext(app: App): ServiceSettings {
  const context = (key: string): string | undefined => {
    const value = app.node.tryGetContext(key);
    return value === undefined || value === null || value === "" ? undefined : String(value);
  };
  const retention = Number(context("logRetentionDays") ?? 30);
  if (!Object.values(RetentionDays).includes(retention)) {
    throw new Error(`logRetentionDays ${retention} is not a CloudWatch retention (e.g. 7, 14, 30, 90, 365)`);
  }
  const concurrency = Number(context("llmMaxConcurrency") ?? defaultSettings.llmMaxConcurrency);
  if (!Number.isInteger(concurrency) || concurrency < 2 || concurrency > 1000) {
    throw new Error("llmMaxConcurrency must be an integer from 2 to 1000 (Lambda's SQS maximum concurrency)");
  }
  const spendAlarm = Number(context("llmSpendAlarmUsdPerHour") ?? defaultSettings.llmSpendAlarmUsdPerHour);
  if (!Number.isFinite(spendAlarm) || spendAlarm <= 0) {
    throw new Error("llmSpendAlarmUsdPerHour must be a positive number of USD");
  }
  return {
    ...defaultSettings,
    llmSpendAlarmUsdPerHour: spendAlarm,
    stageName: context("stageName") ?? defaultSettings.stageName,
    judgeModel: context("judgeModel") ?? defaultSettings.judgeModel,
    llmMaxConcurrency: concurrency,
    kmsKeyArn: context("kmsKeyArn"),
    logRetentionDays: retention as RetentionDays,
    deletionProtection: context("deletionProtection") !== "false",
    anthropicSecretName: context("anthropicSecretName"),
    alarmEmail: context("alarmEmail"),
    throttlingRateLimit: Number(context("throttlingRateLimit") ?? defaultSettings.throttlingRateLimit),
    throttlingBurstLimit: Number(context("throttlingBurstLimit") ?? defaultSettings.throttlingBurstLimit),
  };
}

export function buildApp(app = new App()): { app: App; stack: ServiceStack } {
  const stack = new ServiceStack(app, String(app.node.tryGetContext("stackName") ?? "MetricCollection"), {
    settings: settingsFromContext(app),
    projectRoot,
    description: "Metric collection service: LLM-judged and programmatic metrics over agent calls",
  });
  suppressReviewedFindings(stack);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
  return { app, stack };
}

if (import.meta.main) buildApp().app.synth();
