/**
 * The entities the table's stream consumers act on. Their writers, the wiring's event
 * filter patterns and the stream router all name them from here, so a renamed entity
 * cannot silently stop reaching its consumer.
 */
export const JOB_ENTITY = "Job";
export const CALL_ENTITY = "Call";
export const ROLLUP_DELTA_ENTITY = "RollupDelta";

export type StreamEventName = "INSERT" | "MODIFY" | "REMOVE";

/** The Lambda event filter pattern selecting `eventName` records of items of `entity`. */
export const streamRecordsOf = (eventName: StreamEventName, entity: string) => ({
  eventName: [eventName],
  dynamodb: { NewImage: { entity: { S: [entity] } } },
});
