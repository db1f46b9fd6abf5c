import { notFound } from "../../shared/errors.ts";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { getJob } from "../../shared/store/jobs.ts";
import { listJobValuesByMetric } from "../../shared/store/values.ts";

export const handler = apiRoute(
  contract["GET /v1/metric/collection-jobs/{jobId}/metric-values"],
  async ({ principal, path, query }) => {
    const job = await getJob(principal.orgId, path.jobId);
    if (!job) throw notFound("Collection job", path.jobId);
    return listJobValuesByMetric(principal.orgId, job, query);
  },
);
