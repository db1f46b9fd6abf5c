import { notFound } from "../../shared/errors.ts";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { getJob } from "../../shared/store/jobs.ts";
import { itemsWaitingOnProvider } from "../../shared/store/llm-submissions.ts";

export const handler = apiRoute(contract["GET /v1/metric/collection-jobs/{jobId}"], async ({ principal, path }) => {
  const job = await getJob(principal.orgId, path.jobId);
  if (!job) throw notFound("Collection job", path.jobId);
  if (job.llmMode !== "batch") return job;
  return { ...job, itemsWaitingOnProvider: await itemsWaitingOnProvider(principal.orgId, job.id) };
});
