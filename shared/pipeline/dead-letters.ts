/**
 * The work queue's dead letters (docs/operations.md). An item lands there when every delivery of
 * it crashed, timed out or ran out of memory (or its result could never be recorded): it is
 * recorded as ERROR through the same exactly-once transaction, so its job's counters still
 * converge. A message that names no item is logged and counted for the alarm, then dropped:
 * retrying it could never succeed.
 */
import type { SQSBatchResponse, SQSRecord } from "aws-lambda";
import { logger } from "../logger.ts";
import { ALARMED_COUNTS, publishCount } from "../observability.ts";
import { workItemSchema } from "../schemas/job.ts";
import { type ItemResult, itemErrorValue, recordResults } from "./record.ts";

function parse(body: string) {
  try {
    const parsed = workItemSchema.safeParse(JSON.parse(body));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export async function recordDeadLetters(
  records: SQSRecord[],
  record: typeof recordResults = recordResults,
): Promise<SQSBatchResponse> {
  const results: ItemResult[] = [];
  let malformed = 0;
  for (const message of records) {
    const item = parse(message.body);
    if (!item) {
      malformed++;
      logger.error("Malformed work message dead-lettered; dropped", {
        messageId: message.messageId,
        bodyBytes: Buffer.byteLength(message.body),
      });
      continue;
    }
    const why = item.lastError ? ` Last error: ${item.lastError}` : "";
    results.push({
      messageId: message.messageId,
      item,
      value: itemErrorValue(
        item,
        `Dead-lettered: no evaluation of this item completed (the evaluator crashed, timed out or ran out of memory on every delivery, or its result could not be recorded).${why}`,
      ),
    });
  }
  publishCount(ALARMED_COUNTS.malformedWorkMessages, malformed);
  const outcomes = results.length > 0 ? await record(results) : new Map();
  const unrecorded = results.filter((result) => (outcomes.get(result.messageId) ?? "not-recorded") === "not-recorded");
  const recorded = results.filter((result) => outcomes.get(result.messageId) === "recorded");
  publishCount(ALARMED_COUNTS.deadLetteredItems, recorded.length);
  if (recorded.length > 0) {
    logger.warn("Dead-lettered items recorded as ERROR", {
      items: recorded.map(({ item }) => ({ jobId: item.jobId, callId: item.callId, metricId: item.metricId })),
    });
  }
  return { batchItemFailures: unrecorded.map((result) => ({ itemIdentifier: result.messageId })) };
}
