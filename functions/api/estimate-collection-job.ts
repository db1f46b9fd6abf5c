import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { estimateJob } from "../../shared/pipeline/estimate-job.ts";

export const handler = apiRoute(contract["POST /v1/metric/collection-jobs/estimate"], ({ principal, body }) =>
  estimateJob(principal.orgId, body),
);
