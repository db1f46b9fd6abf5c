/**
 * The CDK app: `npm run synth` / `npx cdk deploy`. Settings come from CDK context
 * (`cdk.json` or `-c key=value`); cdk-nag's AwsSolutions and Serverless checks run on every synth.
 */
import { App, Validations } from "aws-cdk-lib";
import { RetentionDays } from "aws-cdk-lib/aws-logs";
import { AwsSolutionsChecks, ServerlessChecks } from "cdk-nag";
import { defaultSettings, type ServiceSettings, ServiceStack } from "./stack/service-stack.ts";

const projectRoot = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** A setting's rule: what a valid value is, and how the error names it. */
interface NumberRule {
  valid: (n: number) => boolean;
  rule: string;
}
const positive: NumberRule = { valid: (n) => n > 0, rule: "a positive number" };
const positiveInteger: NumberRule = { valid: (n) => Number.isInteger(n) && n > 0, rule: "a positive integer" };
const retentionDays: NumberRule = {
  valid: (n) => Object.values(RetentionDays).includes(n),
  rule: "a CloudWatch retention (e.g. 7, 14, 30, 90, 365)",
};
const lambdaSqsConcurrency: NumberRule = {
  valid: (n) => Number.isInteger(n) && n >= 2 && n <= 1000,
  rule: "an integer from 2 to 1000 (Lambda's SQS maximum concurrency)",
};

export function settingsFromContext(app: App): ServiceSettings {
  const context = (key: string): string | undefined => {
    const value = app.node.tryGetContext(key);
    return value === undefined || value === null || value === "" ? undefined : String(value);
  };
  /** A numeric setting, checked here so a bad value fails synth with its name, not the deploy. */
  const optionalNumber = (key: string, { valid, rule }: NumberRule): number | undefined => {
    const raw = context(key);
    if (raw === undefined) return undefined;
    const value = Number(raw);
    if (!Number.isFinite(value) || !valid(value)) throw new Error(`${key} must be ${rule} (got "${raw}")`);
    return value;
  };
  const number = <K extends keyof ServiceSettings>(key: K, rule: NumberRule) =>
    optionalNumber(key, rule) ?? (defaultSettings[key] as number);
  return {
    ...defaultSettings,
    stageName: context("stageName") ?? defaultSettings.stageName,
    judgeModel: context("judgeModel") ?? defaultSettings.judgeModel,
    llmMaxConcurrency: number("llmMaxConcurrency", lambdaSqsConcurrency),
    kmsKeyArn: context("kmsKeyArn"),
    logRetentionDays: number("logRetentionDays", retentionDays) as RetentionDays,
    deletionProtection: context("deletionProtection") !== "false",
    anthropicSecretName: context("anthropicSecretName"),
    alarmEmail: context("alarmEmail"),
    llmSpendAlarmUsdPerHour: number("llmSpendAlarmUsdPerHour", positive),
    throttlingRateLimit: number("throttlingRateLimit", positive),
    throttlingBurstLimit: number("throttlingBurstLimit", positiveInteger),
    tableMaxReadUnits: optionalNumber("tableMaxReadUnits", positiveInteger),
    tableMaxWriteUnits: optionalNumber("tableMaxWriteUnits", positiveInteger),
  };
}

export function buildApp(app = new App()): { app: App; stack: ServiceStack } {
  const stack = new ServiceStack(app, String(app.node.tryGetContext("stackName") ?? "MetricCollection"), {
    settings: settingsFromContext(app),
    projectRoot,
    description: "Metric collection service: LLM-judged and programmatic metrics over agent calls",
  });
  Validations.of(app).addPlugins(
    new AwsSolutionsChecks(app, { verbose: true }),
    new ServerlessChecks(app, { verbose: true }),
  );
  return { app, stack };
}

if (import.meta.main) buildApp().app.synth();
