import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { cancelJob } from "../../shared/pipeline/cancel-job.ts";

export const handler = apiRoute(
  contract["POST /v1/metric/collection-jobs/{jobId}/cancel"],
  async ({ principal, path }) => cancelJob(principal.orgId, path.jobId),
);
