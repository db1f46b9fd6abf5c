/**
 * One function construct with the service's fixed defaults (Node 24 on ARM64, esbuild
 * bundle as ESM with source maps, an explicit log group with retention, its own or its
 * kind's, tracing), and the
 * one place access is granted: each grant sets the env var that names what was granted,
 * so a function can only reach what it was given.
 */
import { Duration, type RemovalPolicy, Validations } from "aws-cdk-lib";
import type { ITable } from "aws-cdk-lib/aws-dynamodb";
import { PolicyStatement, Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import type { IKey } from "aws-cdk-lib/aws-kms";
import {
  ApplicationLogLevel,
  Architecture,
  LoggingFormat,
  Runtime,
  SystemLogLevel,
  Tracing,
} from "aws-cdk-lib/aws-lambda";
import { NodejsFunction, OutputFormat } from "aws-cdk-lib/aws-lambda-nodejs";
import { type ILogGroup, LogGroup, type RetentionDays } from "aws-cdk-lib/aws-logs";
import type { ISecret } from "aws-cdk-lib/aws-secretsmanager";
import type { IQueue } from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import { envVarOf, queueUrlEnvVar } from "../../shared/config.ts";
import { API_RATE_LIMIT_SUFFIX, keys } from "../../shared/keys.ts";
import type { QueueName } from "../../shared/table.ts";
import {
  type Access,
  type FunctionEntry,
  memoryOf,
  TABLE_READ_ACTIONS,
  TABLE_WRITE_ACTIONS,
  type TableAccess,
  timeoutOf,
} from "../../shared/wiring.ts";

export interface ServiceResources {
  table: ITable;
  queues: Record<QueueName, IQueue>;
  anthropicSecret: ISecret;
  /** How cdk-nag names the table's indexes and the secret in a policy, for acknowledging grants to them. */
  nagResourceIds: { tableIndexes: string; secret: string };
}

export interface ServiceFunctionProps {
  entry: FunctionEntry;
  logRetention: RetentionDays;
  logRemovalPolicy: RemovalPolicy;
  /** The customer's KMS key for the log group, when one is given. */
  logEncryptionKey?: IKey;
  /** Environment every function shares (service name, log level, judge model…). */
  environment: Record<string, string>;
  /** Repo root, for resolving `entry.entry` and the lock file. */
  projectRoot: string;
  /** A log group shared with functions of its kind (the API's), instead of one of its own. */
  logGroup?: ILogGroup;
  /**
   * A role shared with functions of identical access (the API's routes), instead of one of
   * its own: the same grants, one role and policy instead of two resources per function.
   */
  role?: Role;
}

const iamActions = (actions: readonly string[]) => actions.map((action) => `dynamodb:${action}`);

/** The table actions `access` needs, on the table and its indexes, and the use of its key when it has one. */
function grantTable(fn: NodejsFunction, access: TableAccess, table: ITable) {
  if (access === "apiKeys") {
    // The authorizer resolves a key by its hash: it may read API-key items and nothing else.
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: ["dynamodb:GetItem"],
        resources: [table.tableArn],
        conditions: { "ForAllValues:StringLike": { "dynamodb:LeadingKeys": [`${keys.apiKey("").pk}*`] } },
      }),
    );
    table.encryptionKey?.grantDecrypt(fn);
    return;
  }
  const writes = access === "readWrite";
  table.grant(fn, ...iamActions(TABLE_READ_ACTIONS), ...(writes ? iamActions(TABLE_WRITE_ACTIONS) : []));
  if (writes) table.encryptionKey?.grantEncryptDecrypt(fn);
  else table.encryptionKey?.grantDecrypt(fn);
}

/** The API rate's items (GCRA state per organization): read and updated by every API function, nothing else. */
function grantApiRateLimit(fn: NodejsFunction, table: ITable) {
  fn.addToRolePolicy(
    new PolicyStatement({
      actions: ["dynamodb:GetItem", "dynamodb:UpdateItem"],
      resources: [table.tableArn],
      conditions: {
        "ForAllValues:StringLike": {
          "dynamodb:LeadingKeys": [`ORG#*${API_RATE_LIMIT_SUFFIX}`],
        },
      },
    }),
  );
  table.encryptionKey?.grantEncryptDecrypt(fn);
}

/** Bundling hooks that copy a repo folder into the bundle, where the handler reads it at run time. */
const copyNextToBundle = (folder: string) => ({
  beforeBundling: () => [],
  beforeInstall: () => [],
  afterBundling: (inputDir: string, outputDir: string) => [`cp -R "${inputDir}/${folder}" "${outputDir}/${folder}"`],
});

export class ServiceFunction extends Construct {
  readonly fn: NodejsFunction;
  private readonly sharedRole: Role | undefined;

  constructor(scope: Construct, id: string, props: ServiceFunctionProps) {
    super(scope, id);
    const logGroup =
      props.logGroup ??
      new LogGroup(this, "Logs", {
        retention: props.logRetention,
        removalPolicy: props.logRemovalPolicy,
        encryptionKey: props.logEncryptionKey,
      });
    // A role of its own (or of its access) instead of AWSLambdaBasicExecutionRole: logs may go
    // to this function's group only. (The group's ARN attribute already ends in `:*`, which
    // covers its log streams; a shared role's repeated grants collapse into one statement.)
    this.sharedRole = props.role;
    const role = props.role ?? new Role(this, "Role", { assumedBy: new ServicePrincipal("lambda.amazonaws.com") });
    logGroup.grantWrite(role);
    this.acknowledge(
      "AwsSolutions-IAM5[Resource::*]",
      "X-Ray tracing (xray:PutTraceSegments/PutTelemetryRecords) has no resource-level permissions.",
    );
    this.fn = new NodejsFunction(this, "Function", {
      entry: `${props.projectRoot}/${props.entry.entry}`,
      handler: "handler",
      role,
      depsLockFilePath: `${props.projectRoot}/package-lock.json`,
      projectRoot: props.projectRoot,
      runtime: Runtime.NODEJS_24_X,
      architecture: Architecture.ARM_64,
      memorySize: memoryOf(props.entry),
      // A scheduled function's runs never overlap (the local scheduler skips a tick the same way).
      ...("expression" in props.entry ? { reservedConcurrentExecutions: 1 } : {}),
      timeout: Duration.seconds(timeoutOf(props.entry)),
      tracing: Tracing.ACTIVE,
      logGroup,
      // JSON lines, filtered by level before they are billed: Powertools' logger writes JSON too.
      loggingFormat: LoggingFormat.JSON,
      applicationLogLevelV2: ApplicationLogLevel.INFO,
      systemLogLevelV2: SystemLogLevel.WARN,
      environment: { NODE_OPTIONS: "--enable-source-maps", ...props.environment },
      bundling: {
        format: OutputFormat.ESM,
        target: "node24",
        minify: true,
        sourceMap: true,
        // Stack traces need file names and lines, not the sources: the map stays small.
        sourcesContent: false,
        // ESM bundles still meet CommonJS dependencies that call require().
        banner: "import { createRequire } from 'module';const require = createRequire(import.meta.url);",
        // The SDK v3 ships with the runtime, but bundling pins the version we test with.
        externalModules: [],
        ...(props.entry.assetsFolder ? { commandHooks: copyNextToBundle(props.entry.assetsFolder) } : {}),
      },
    });
  }

  /** Accepts a reviewed cdk-nag finding on this function and what it owns (role, event sources). */
  acknowledge(id: string, reason: string): this {
    Validations.of(this).acknowledge({ id, reason });
    if (this.sharedRole) Validations.of(this.sharedRole).acknowledge({ id, reason });
    return this;
  }

  /** Grants what `access` names and sets the matching env vars, nothing more. */
  grant(access: Access, resources: ServiceResources): this {
    if (access.apiRateLimit) grantApiRateLimit(this.fn, resources.table);
    if (access.table) {
      grantTable(this.fn, access.table, resources.table);
      this.fn.addEnvironment(envVarOf("tableName"), resources.table.tableName);
      if (access.table !== "apiKeys") {
        this.acknowledge(
          `AwsSolutions-IAM5[Resource::${resources.nagResourceIds.tableIndexes}]`,
          "Reads cover the table's own secondary index (gsi1), nothing outside the table.",
        );
      }
    }
    const usesKey = Boolean(
      (access.table && resources.table.encryptionKey) ||
        (access.sendTo ?? []).some((queue) => resources.queues[queue].encryptionMasterKey),
    );
    if (usesKey) {
      // CDK's standard grants on the customer's one key (kmsKeyArn) for the table and queues.
      this.acknowledge("AwsSolutions-IAM5[Action::kms:ReEncrypt*]", "Table access through the customer's KMS key.");
      this.acknowledge(
        "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
        "Writes and sends need data keys from the customer's one KMS key.",
      );
    }
    for (const queue of access.sendTo ?? []) {
      resources.queues[queue].grantSendMessages(this.fn);
      this.fn.addEnvironment(queueUrlEnvVar(queue), resources.queues[queue].queueUrl);
    }
    for (const secret of access.secrets ?? []) {
      if (secret === "anthropic") {
        resources.anthropicSecret.grantRead(this.fn);
        this.acknowledge(
          `AwsSolutions-IAM5[Resource::${resources.nagResourceIds.secret}]`,
          "Secrets Manager ARNs end in a random suffix; the grant is to this one secret.",
        );
        // The secret's name, never its value: the function reads it at run time.
        this.fn.addEnvironment(envVarOf("anthropicApiKeySecretId"), resources.anthropicSecret.secretArn);
      }
    }
    return this;
  }
}
