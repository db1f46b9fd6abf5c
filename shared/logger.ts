import { Logger } from "@aws-lambda-powertools/logger";
import { SERVICE_NAME } from "./observability.ts";

/** One structured logger per container; never log transcripts or keys. */
export const logger = new Logger({
  // The deployed stack's name (set by the CDK app), so two stacks' lines can be told apart.
  serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? SERVICE_NAME,
  logLevel: (process.env.LOG_LEVEL ?? "INFO") as "INFO",
});
