import type { DynamoDBStreamEvent } from "aws-lambda";
import { finalizeJobs } from "../../shared/pipeline/finalize.ts";

export const handler = (event: DynamoDBStreamEvent) => finalizeJobs(event.Records);
