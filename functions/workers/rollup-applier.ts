import { applyStreamedDeltas } from "../../shared/analytics/delta-stream.ts";
import { streamBatch } from "../../shared/consumers.ts";

export const handler = streamBatch(applyStreamedDeltas);
