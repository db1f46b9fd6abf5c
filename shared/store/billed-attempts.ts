/**
 * Model answers that were billed but that no recorded value carries: an invalid answer whose
 * item runs again, a grouped request whose group runs again, a result whose job ended first.
 * Their usage and cost are added to the job, so the job's bill is what the provider billed.
 * Each attempt is added once: a marker per attempt, written in the same transaction as the
 * addition, makes a repeated write (an SDK retry, batch results read again) change nothing.
 */
import { createHash } from "node:crypto";
import { keys } from "../keys.ts";
import { type BilledUsage, jobUsageUpdate } from "./jobs.ts";
import { spendUpdate } from "./spend.ts";
import { backOffAfterConflict, failedConditions, type TableTransactItem, table } from "./table.ts";

export interface BilledAttempt extends BilledUsage {
  /** Names the billed answer, the same each time it is reported (e.g. message id and receive count). */
  attemptId: string;
}

const MAX_ATTEMPTS = 6;
/** Markers per transaction, beside the job's update (at most 100 actions). */
const MARKERS_PER_TRANSACTION = 50;
/** Markers only guard against repeated writes, which come within minutes. */
const MARKER_RETENTION_SECONDS = 7 * 24 * 3600;
/** Longer attempt ids are hashed, so a marker's key stays small whatever the id is made of. */
const MAX_ATTEMPT_ID_LENGTH = 200;

const markerId = (attemptId: string) =>
  attemptId.length <= MAX_ATTEMPT_ID_LENGTH ? attemptId : createHash("sha256").update(attemptId).digest("hex");

function transaction(orgId: string, jobId: string, attempts: BilledAttempt[]): TableTransactItem[] {
  const usage = jobUsageUpdate(attempts);
  const expiresAt = Math.floor(Date.now() / 1000) + MARKER_RETENTION_SECONDS;
  return [
    {
      // Whatever the job's status: the provider billed these whether or not the job still runs.
      Update: {
        Key: keys.job(orgId, jobId),
        UpdateExpression: `SET updatedAt = :now${usage.expression.replace(/^, /, " ADD ")}`,
        ConditionExpression: "attribute_exists(pk)",
        ExpressionAttributeValues: { ":now": new Date().toISOString(), ...usage.values },
      },
    },
    ...attempts.map((attempt) => ({
      Put: {
        Item: {
          ...keys.billedAttempt(orgId, jobId, markerId(attempt.attemptId)),
          entity: "BilledAttempt",
          expiresAt,
        },
        ConditionExpression: "attribute_not_exists(pk)",
      },
    })),
    ...spendUpdate(orgId, jobId, usage.micros),
  ];
}

/** Adds billed attempts' usage and cost to their job, each attempt once; a job that no longer exists is left alone. */
export async function addBilledAttempts(orgId: string, jobId: string, attempts: BilledAttempt[]): Promise<void> {
  const billed = [...new Map(attempts.filter((a) => a.usage).map((a) => [markerId(a.attemptId), a])).values()];
  for (let start = 0; start < billed.length; start += MARKERS_PER_TRANSACTION) {
    let pending = billed.slice(start, start + MARKERS_PER_TRANSACTION);
    for (let attempt = 1; pending.length > 0; attempt++) {
      try {
        await table.transactWrite(transaction(orgId, jobId, pending));
        break;
      } catch (error) {
        const failedAt = failedConditions(error);
        if (!failedAt || attempt >= MAX_ATTEMPTS) throw error;
        if (failedAt[0]) return;
        // A concurrent write to the job item (the recorder's): nothing was added; again.
        if (!failedAt.some(Boolean)) await backOffAfterConflict(attempt);
        // Attempts added before (their marker exists) drop out; the rest are written again.
        pending = pending.filter((_, position) => !failedAt[position + 1]);
      }
    }
  }
}
