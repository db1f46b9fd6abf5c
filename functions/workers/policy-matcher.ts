import type { DynamoDBStreamEvent } from "aws-lambda";
import { matchNewCalls } from "../../shared/policies/on-new-calls.ts";

export const handler = (event: DynamoDBStreamEvent) => matchNewCalls(event.Records);
