/**
 * The work queue's dead letters (docs/operations.md). An item lands there when every delivery of
 * it crashed, timed out or ran out of memory (or its result could never be recorded): it is
 * recorded as ERROR through the same exactly-once transaction, so its job's counters still
 * converge. A message that names no item is logged and counted for the alarm, then dropped:
 * retrying it could never succeed.
 */
import type { QueueMessage, Redeliver } from "../consumers.ts";
import { logger } from "../logger.ts";
import { ALARMED_COUNTS, publishCount } from "../observability.ts";
import type { WorkItem } from "../schemas/job.ts";
import { type ItemResult, itemErrorValue, recordResults } from "./record.ts";

/** Counts the dead letters that name no item, for the alarm (`sqsBatch` drops them). */
export const countMalformedDeadLetters = (count: number) => publishCount(ALARMED_COUNTS.malformedWorkMessages, count);

export async function recordDeadLetters(
  messages: QueueMessage<WorkItem>[],
  record: typeof recordResults = recordResults,
): Promise<Redeliver> {
  const results: ItemResult[] = messages.map(({ record: { messageId }, body: item }) => {
    const why = item.lastError ? ` Last error: ${item.lastError}` : "";
    return {
      messageId,
      item,
      value: itemErrorValue(
        item,
        `Dead-lettered: no evaluation of this item completed (the evaluator crashed, timed out or ran out of memory on every delivery, or its result could not be recorded).${why}`,
      ),
    };
  });
  const outcomes = await record(results);
  const unrecorded = results.filter((result) => (outcomes.get(result.messageId) ?? "not-recorded") === "not-recorded");
  const recorded = results.filter((result) => outcomes.get(result.messageId) === "recorded");
  publishCount(ALARMED_COUNTS.deadLetteredItems, recorded.length);
  if (recorded.length > 0) {
    logger.warn("Dead-lettered items recorded as ERROR", {
      items: recorded.map(({ item }) => ({ jobId: item.jobId, callId: item.callId, metricId: item.metricId })),
    });
  }
  return unrecorded.map((result) => result.messageId);
}
