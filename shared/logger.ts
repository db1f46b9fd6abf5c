import { Logger } from "@aws-lambda-powertools/logger";

/** One structured logger per container; never log transcripts or keys. */
export const logger = new Logger({
  serviceName: "metric-collection",
  logLevel: (process.env.LOG_LEVEL ?? "INFO") as "INFO",
});
