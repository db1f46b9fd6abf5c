/**
 * Submissions: a batch-mode job's items handed to the Message Batches API together. The
 * record is written before the provider batch is created and lists every item, so a
 * submitter that dies at any point leaves a record the collector can finish from; it stays
 * in the open index (LLMSUBMISSIONS#OPEN) until its results are recorded.
 */
import { randomBytes } from "node:crypto";
import { keys } from "../keys.ts";
import { itemBytes } from "./item-budget.ts";
import { baseItems, queryAll } from "./query.ts";
import { failedConditions, table } from "./table.ts";

export type SubmissionStatus = "CREATING" | "SUBMITTED" | "COLLECTED";

/** One request of the batch: a call and the metrics it asks about (several when grouped). */
export interface SubmissionUnit {
  callId: string;
  metrics: { id: string; version: number; failedAttempts?: number }[];
}

export interface LlmSubmission {
  orgId: string;
  jobId: string;
  id: string;
  status: SubmissionStatus;
  units: SubmissionUnit[];
  itemCount: number;
  createdAt: string;
  providerBatchId?: string;
  /** Result lines recorded so far: collection resumes after them. */
  collectedLines?: number;
}

/** What a submission's units may weigh, so its record stays far below DynamoDB's 400 KB whatever the ids. */
export const SUBMISSION_UNITS_BUDGET_BYTES = 256 * 1024;
/** Collected submissions are kept a while for support, then expire. */
const COLLECTED_RETENTION_SECONDS = 30 * 86_400;
const ENTITY = "LlmSubmission";

/** A short random id: it prefixes each request's custom_id (at most 64 characters). */
export const newSubmissionId = () => randomBytes(10).toString("hex");

/** The custom_id of a submission's `index`-th request. */
export const customIdOf = (submissionId: string, index: number) => `${submissionId}-${index}`;

/** Units cut into runs that each fit one submission's budget. */
export function chunkUnits(units: SubmissionUnit[]): SubmissionUnit[][] {
  const chunks: SubmissionUnit[][] = [];
  let current: SubmissionUnit[] = [];
  let bytes = 0;
  for (const unit of units) {
    const size = itemBytes({ unit }) + 2;
    if (current.length > 0 && bytes + size > SUBMISSION_UNITS_BUDGET_BYTES) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(unit);
    bytes += size;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

const openSortKey = (s: Pick<LlmSubmission, "createdAt" | "orgId" | "jobId" | "id">) =>
  `${s.createdAt}#${s.orgId}#${s.jobId}#${s.id}`;

function fromItem(item: Record<string, unknown>): LlmSubmission {
  const { pk, sk, entity, gsi1pk, gsi1sk, expiresAt, ...rest } = item;
  return rest as unknown as LlmSubmission;
}

export async function putSubmission(submission: LlmSubmission): Promise<void> {
  await table.put({
    Item: {
      ...keys.llmSubmission(submission.orgId, submission.jobId, submission.id),
      entity: ENTITY,
      gsi1pk: keys.openLlmSubmissions,
      gsi1sk: openSortKey(submission),
      ...submission,
    },
  });
}

/**
 * Records the provider's batch id, and the batch as this submission's; false when the
 * submission had a batch already (or is gone) or the batch belongs to another submission.
 */
export async function markSubmitted(s: LlmSubmission, providerBatchId: string): Promise<boolean> {
  try {
    await table.transactWrite([
      {
        Update: {
          Key: keys.llmSubmission(s.orgId, s.jobId, s.id),
          UpdateExpression: "SET #status = :submitted, providerBatchId = :batch",
          ConditionExpression: "#status = :creating",
          ExpressionAttributeNames: { "#status": "status" },
          ExpressionAttributeValues: { ":submitted": "SUBMITTED", ":creating": "CREATING", ":batch": providerBatchId },
        },
      },
      {
        Put: {
          Item: {
            ...keys.providerBatch(providerBatchId),
            entity: "ProviderBatch",
            orgId: s.orgId,
            jobId: s.jobId,
            submissionId: s.id,
            expiresAt: Math.floor(Date.now() / 1000) + COLLECTED_RETENTION_SECONDS,
          },
          ConditionExpression: "attribute_not_exists(pk)",
        },
      },
    ]);
    return true;
  } catch (error) {
    if (failedConditions(error)) return false;
    throw error;
  }
}

/** Whether a provider batch is some submission's already. */
export async function isKnownProviderBatch(batchId: string): Promise<boolean> {
  return (await table.get(keys.providerBatch(batchId), { ConsistentRead: true })) !== undefined;
}

export async function saveCheckpoint(s: LlmSubmission, collectedLines: number): Promise<void> {
  await table.update({
    Key: keys.llmSubmission(s.orgId, s.jobId, s.id),
    UpdateExpression: "SET collectedLines = :lines",
    ExpressionAttributeValues: { ":lines": collectedLines },
  });
}

/** Every result is recorded: out of the open index, kept a while, then expired. */
export async function closeSubmission(s: LlmSubmission): Promise<void> {
  await table.update({
    Key: keys.llmSubmission(s.orgId, s.jobId, s.id),
    UpdateExpression: "SET #status = :collected, expiresAt = :expires REMOVE gsi1pk, gsi1sk",
    ExpressionAttributeNames: { "#status": "status" },
    ExpressionAttributeValues: {
      ":collected": "COLLECTED",
      ":expires": Math.floor(Date.now() / 1000) + COLLECTED_RETENTION_SECONDS,
    },
  });
}

/** A submission whose provider batch was certainly not created (the API refused it). */
export async function deleteSubmission(s: LlmSubmission): Promise<void> {
  await table.delete({ Key: keys.llmSubmission(s.orgId, s.jobId, s.id) });
}

/** Submissions whose results are not all recorded, oldest first, across organizations. */
export async function listOpenSubmissions(): Promise<LlmSubmission[]> {
  const entries = await queryAll({
    IndexName: "gsi1",
    KeyConditionExpression: "gsi1pk = :open",
    ExpressionAttributeValues: { ":open": keys.openLlmSubmissions },
  });
  const open = entries.filter((entry) => entry.status !== "COLLECTED");
  return (await baseItems(open)).flatMap((item) => (item.status !== "COLLECTED" ? [fromItem(item)] : []));
}

/** A job's submissions (all of them, or only those still open). */
export async function listJobSubmissions(orgId: string, jobId: string): Promise<LlmSubmission[]> {
  const items = await queryAll({
    KeyConditionExpression: "pk = :pk AND begins_with(sk, :prefix)",
    ExpressionAttributeValues: { ":pk": keys.job(orgId, jobId).pk, ":prefix": keys.llmSubmissionPrefix },
    ConsistentRead: true,
  });
  return items.map(fromItem);
}

/** The value keys (sk) of a job's items listed in its open submissions. */
export async function itemsInOpenSubmissions(orgId: string, jobId: string): Promise<Set<string>> {
  const open = (await listJobSubmissions(orgId, jobId)).filter((s) => s.status !== "COLLECTED");
  return new Set(
    open.flatMap((s) =>
      s.units.flatMap((unit) => unit.metrics.map((m) => keys.itemResult(orgId, jobId, unit.callId, m.id).sk)),
    ),
  );
}

/** Items of a job handed to the provider whose results are not recorded yet. */
export async function itemsWaitingOnProvider(orgId: string, jobId: string): Promise<number> {
  const items = await queryAll({
    KeyConditionExpression: "pk = :pk AND begins_with(sk, :prefix)",
    FilterExpression: "#status <> :collected",
    ProjectionExpression: "itemCount",
    ExpressionAttributeNames: { "#status": "status" },
    ExpressionAttributeValues: {
      ":pk": keys.job(orgId, jobId).pk,
      ":prefix": keys.llmSubmissionPrefix,
      ":collected": "COLLECTED",
    },
  });
  return items.reduce((sum, item) => sum + Number(item.itemCount ?? 0), 0);
}
