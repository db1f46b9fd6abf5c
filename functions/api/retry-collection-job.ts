import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { retryFailedItems } from "../../shared/pipeline/retry-job.ts";

export const handler = apiRoute(
  contract["POST /v1/metric/collection-jobs/{jobId}/retry"],
  async ({ principal, path }) => retryFailedItems(principal.orgId, path.jobId),
);
