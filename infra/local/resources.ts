/** Creates (and deletes) the table and queues on the local engines from the shared declarations. */
import {
  CreateTableCommand,
  DeleteTableCommand,
  DescribeTableCommand,
  type DynamoDBClient,
  ResourceInUseException,
  ResourceNotFoundException,
  UpdateTimeToLiveCommand,
} from "@aws-sdk/client-dynamodb";
import {
  CreateQueueCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  QueueDoesNotExist,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import { type QueueName, queueDeclarations, tableDeclaration } from "../../shared/table.ts";

/** `stream: false` only for a benchmark table that nothing consumes (bench/analytics.ts). */
export async function createTable(
  client: DynamoDBClient,
  tableName: string,
  options: { stream?: boolean } = {},
): Promise<void> {
  const keyAttributes = [
    tableDeclaration.partitionKey,
    tableDeclaration.sortKey,
    ...tableDeclaration.globalSecondaryIndexes.flatMap((index) => [index.partitionKey, index.sortKey]),
  ];
  try {
    await client.send(
      new CreateTableCommand({
        TableName: tableName,
        BillingMode: "PAY_PER_REQUEST",
        AttributeDefinitions: [...new Set(keyAttributes)].map((name) => ({ AttributeName: name, AttributeType: "S" })),
        KeySchema: [
          { AttributeName: tableDeclaration.partitionKey, KeyType: "HASH" },
          { AttributeName: tableDeclaration.sortKey, KeyType: "RANGE" },
        ],
        GlobalSecondaryIndexes: tableDeclaration.globalSecondaryIndexes.map((index) => ({
          IndexName: index.indexName,
          KeySchema: [
            { AttributeName: index.partitionKey, KeyType: "HASH" },
            { AttributeName: index.sortKey, KeyType: "RANGE" },
          ],
          Projection: { ProjectionType: "INCLUDE", NonKeyAttributes: [...index.projectedAttributes] },
        })),
        ...(options.stream === false
          ? {}
          : { StreamSpecification: { StreamEnabled: true, StreamViewType: tableDeclaration.stream } }),
      }),
    );
  } catch (error) {
    if (!(error instanceof ResourceInUseException)) throw error;
  }
  for (let attempt = 0; attempt < 100; attempt++) {
    const { Table } = await client.send(new DescribeTableCommand({ TableName: tableName }));
    if (Table?.TableStatus === "ACTIVE") break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await client
    .send(
      new UpdateTimeToLiveCommand({
        TableName: tableName,
        TimeToLiveSpecification: { Enabled: true, AttributeName: tableDeclaration.timeToLiveAttribute },
      }),
    )
    .catch(() => {
      // Already enabled (re-run) or unsupported locally: expiry is not needed for local runs.
    });
}

export interface CreatedQueue {
  url: string;
  arn: string;
  dlqUrl: string;
  dlqArn: string;
}

export type QueueOverrides = Partial<
  Record<QueueName, { visibilityTimeoutSeconds?: number; maxReceiveCount?: number }>
>;

async function createQueue(sqs: SQSClient, name: string, attributes: Record<string, string>) {
  const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }));
  if (!QueueUrl) throw new Error(`CreateQueue ${name} returned no URL`);
  const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ["QueueArn"] }));
  const arn = Attributes?.QueueArn;
  if (!arn) throw new Error(`Queue ${name} has no ARN`);
  return { url: QueueUrl, arn };
}

/** Each queue with its dead-letter queue and redrive policy, as the CDK stack deploys them. */
export async function createQueues(
  sqs: SQSClient,
  prefix: string,
  overrides: QueueOverrides = {},
): Promise<Record<QueueName, CreatedQueue>> {
  const created = {} as Record<QueueName, CreatedQueue>;
  for (const declaration of Object.values(queueDeclarations)) {
    const override = overrides[declaration.name] ?? {};
    const dlq = await createQueue(sqs, `${prefix}-${declaration.name}-dlq`, {
      MessageRetentionPeriod: String(14 * 86_400),
    });
    const queue = await createQueue(sqs, `${prefix}-${declaration.name}`, {
      VisibilityTimeout: String(override.visibilityTimeoutSeconds ?? declaration.visibilityTimeoutSeconds),
      MessageRetentionPeriod: String(declaration.retentionSeconds),
      RedrivePolicy: JSON.stringify({
        deadLetterTargetArn: dlq.arn,
        maxReceiveCount: override.maxReceiveCount ?? declaration.maxReceiveCount,
      }),
    });
    created[declaration.name] = { url: queue.url, arn: queue.arn, dlqUrl: dlq.url, dlqArn: dlq.arn };
  }
  return created;
}

/** Deletes a table made by createTable; one already gone is fine. */
export async function deleteTable(client: DynamoDBClient, tableName: string): Promise<void> {
  try {
    await client.send(new DeleteTableCommand({ TableName: tableName }));
  } catch (error) {
    if (!(error instanceof ResourceNotFoundException)) throw error;
  }
}

/** Deletes the queues made by createQueues, dead-letter queues included; those already gone are fine. */
export async function deleteQueues(sqs: SQSClient, queues: Record<QueueName, CreatedQueue>): Promise<void> {
  const urls = Object.values(queues).flatMap((queue) => [queue.url, queue.dlqUrl]);
  await Promise.all(
    urls.map(async (QueueUrl) => {
      try {
        await sqs.send(new DeleteQueueCommand({ QueueUrl }));
      } catch (error) {
        if (!(error instanceof QueueDoesNotExist)) throw error;
      }
    }),
  );
}
