import { sqsBatch } from "../../shared/consumers.ts";
import { countMalformedDeadLetters, recordDeadLetters } from "../../shared/pipeline/dead-letters.ts";
import { workItemSchema } from "../../shared/schemas/job.ts";

/** A dead letter that names no item can never succeed: counted for the alarm and dropped. */
export const handler = sqsBatch(workItemSchema, (messages) => recordDeadLetters(messages), {
  malformed: "drop",
  onMalformed: countMalformedDeadLetters,
});
