import { notFound } from "../../shared/errors.ts";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { isRunningStatus } from "../../shared/schemas/job.ts";
import { getJob } from "../../shared/store/jobs.ts";
import { itemsWaitingOnProvider } from "../../shared/store/llm-submissions.ts";

export const handler = apiRoute(contract["GET /v1/metric/collection-jobs/{jobId}"], async ({ principal, path }) => {
  const job = await getJob(principal.orgId, path.jobId);
  if (!job) throw notFound("Collection job", path.jobId);
  if (job.llmMode !== "batch") return job;
  // An ended job waits on nothing, though the collector closes a batch only after recording its results.
  const waiting = isRunningStatus(job.status) ? await itemsWaitingOnProvider(principal.orgId, job.id) : 0;
  return { ...job, itemsWaitingOnProvider: waiting };
});
