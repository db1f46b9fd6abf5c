import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { createCollectionJob } from "../../shared/pipeline/create-job.ts";

export const handler = apiRoute(contract["POST /v1/metric/collection-jobs"], async ({ principal, body }) =>
  createCollectionJob(principal.orgId, body),
);
