import { Logger } from "@aws-lambda-powertools/logger";
import { SERVICE_NAME } from "./observability.ts";

/** One structured logger per container; never log transcripts or keys. */
export const logger = new Logger({
  serviceName: SERVICE_NAME,
  logLevel: (process.env.LOG_LEVEL ?? "INFO") as "INFO",
});
