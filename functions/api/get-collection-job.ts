import { notFound } from "../../shared/errors.ts";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { getJob } from "../../shared/store/jobs.ts";

export const handler = apiRoute(contract["GET /v1/metric/collection-jobs/{jobId}"], async ({ principal, path }) => {
  const job = await getJob(principal.orgId, path.jobId);
  if (!job) throw notFound("Collection job", path.jobId);
  return job;
});
