import { streamBatch } from "../../shared/consumers.ts";
import { finalizeJobs } from "../../shared/pipeline/finalize.ts";
import { routeStreamRecords, type StreamRoute } from "../../shared/pipeline/stream-router.ts";
import { matchNewCalls } from "../../shared/policies/on-new-calls.ts";
import { CALL_ENTITY, JOB_ENTITY } from "../../shared/stream-entities.ts";

/** Kept in step with the stream-router's filter pattern in the wiring (test/unit/stream-router.test.ts). */
export const streamRoutes: StreamRoute[] = [
  { name: "finalizer", eventName: "MODIFY", entity: JOB_ENTITY, handle: finalizeJobs },
  { name: "policy-matcher", eventName: "INSERT", entity: CALL_ENTITY, handle: matchNewCalls },
];

export const handler = streamBatch((records) => routeStreamRecords(records, streamRoutes));
