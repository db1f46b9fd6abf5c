import { z } from "zod";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { pageQuerySchema } from "../../shared/http/pagination.ts";
import { jobStatuses } from "../../shared/schemas/job.ts";
import { listJobs } from "../../shared/store/jobs.ts";

export const handler = apiRoute(
  { query: pageQuerySchema(50, 20).extend({ status: z.enum(jobStatuses).optional() }) },
  ({ principal, query }) => listJobs(principal.orgId, query),
);
