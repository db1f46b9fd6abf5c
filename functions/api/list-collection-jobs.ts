import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { listJobs } from "../../shared/store/jobs.ts";

export const handler = apiRoute(contract["GET /v1/metric/collection-jobs"], ({ principal, query }) =>
  listJobs(principal.orgId, query),
);
