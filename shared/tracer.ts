/**
 * X-Ray traces through Powertools' Tracer: each invocation's segment with its cold start,
 * the organization and job as annotations (searchable), a subsegment per DynamoDB and SQS
 * request and per model call (fetch). Responses are never captured: they hold tenant data.
 * Outside Lambda (tests, `npm start`) the tracer is off and every call here does nothing.
 */
import { Tracer } from "@aws-lambda-powertools/tracer";
import { SERVICE_NAME } from "./observability.ts";

export const tracer = new Tracer({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? SERVICE_NAME });

/** An AWS SDK v3 client whose requests appear as subsegments. */
export const traced = <T>(client: T): T => tracer.captureAWSv3Client(client);

/** Marks the invocation's segment with the ids a trace search filters on. */
export function annotate(ids: { orgId?: string; jobId?: string }): void {
  if (!tracer.isTracingEnabled()) return;
  if (ids.orgId) tracer.putAnnotation("orgId", ids.orgId);
  if (ids.jobId) tracer.putAnnotation("jobId", ids.jobId);
}
