import type { DynamoDBStreamEvent } from "aws-lambda";
import { applyStreamedDeltas } from "../../shared/analytics/delta-stream.ts";

export const handler = (event: DynamoDBStreamEvent) => applyStreamedDeltas(event.Records);
