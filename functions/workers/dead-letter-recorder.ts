import type { SQSEvent } from "aws-lambda";
import { recordDeadLetters } from "../../shared/pipeline/dead-letters.ts";

export const handler = (event: SQSEvent) => recordDeadLetters(event.Records);
