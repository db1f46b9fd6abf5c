/**
 * The single table and the queues, declared once. The CDK stack and the local runtime
 * both build their resources from these declarations so they cannot drift.
 */
export const tableDeclaration = {
  partitionKey: "pk",
  sortKey: "sk",
  /**
   * Generic overloaded index: lists (calls, jobs, metrics of an org), values of a call, and the
   * shared due/open partitions. It projects keys and the few small attributes its queries
   * filter on, never whole items: a job's counters change every batch and a value carries its
   * reasoning, and an index holding them would be rewritten at their full size each time.
   * Readers that need the whole item fetch it from the table (`baseItems`).
   */
  globalSecondaryIndexes: [
    {
      indexName: "gsi1",
      partitionKey: "gsi1pk",
      sortKey: "gsi1sk",
      /** Job, policy, backfill and submission status; a value's status and metric version. */
      projectedAttributes: ["status", "captureStatus", "metricVersion"],
    },
  ],
  timeToLiveAttribute: "expiresAt",
  stream: "NEW_AND_OLD_IMAGES",
} as const;

export type QueueName = "work" | "dispatch" | "webhook" | "batch";

export interface QueueDeclaration {
  name: QueueName;
  /** Seconds a received message stays invisible; in AWS at least 6 x the consumer's timeout. */
  visibilityTimeoutSeconds: number;
  /** Receives before SQS moves a message to the queue's dead-letter queue. */
  maxReceiveCount: number;
  retentionSeconds: number;
  /**
   * A fair queue: senders set `MessageGroupId` to the tenant, and SQS serves a group with few
   * messages in flight before one with a backlog. Nothing to configure in AWS (any standard
   * queue is fair once its messages carry a group); the local runtime models it (infra/local/fair-queues.ts).
   */
  fair?: boolean;
}

export const queueDeclarations: Record<QueueName, QueueDeclaration> = {
  /** One message per call x metric item. */
  work: { name: "work", visibilityTimeoutSeconds: 1800, maxReceiveCount: 5, retentionSeconds: 4 * 86_400, fair: true },
  /** One message per page of a job's calls; expanded into work items by the dispatcher. */
  dispatch: { name: "dispatch", visibilityTimeoutSeconds: 900, maxReceiveCount: 5, retentionSeconds: 4 * 86_400 },
  /** One message per LLM item of a batch-mode job, gathered into Message Batches by the submitter. */
  batch: { name: "batch", visibilityTimeoutSeconds: 900, maxReceiveCount: 5, retentionSeconds: 4 * 86_400 },
  /** One message per job status to announce; retried with backoff for a day, so many receives. */
  webhook: { name: "webhook", visibilityTimeoutSeconds: 360, maxReceiveCount: 100, retentionSeconds: 2 * 86_400 },
};
