import { z } from "zod";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { notFound } from "../../shared/http/errors.ts";
import { pageQuerySchema } from "../../shared/http/pagination.ts";
import { getJob } from "../../shared/store/jobs.ts";
import { listJobValuesByMetric } from "../../shared/store/values.ts";

export const handler = apiRoute(
  {
    path: z.object({ jobId: z.string().min(1) }),
    query: pageQuerySchema(1000, 500).extend({ status: z.enum(["success", "all"]).default("all") }),
  },
  async ({ principal, path, query }) => {
    const job = await getJob(principal.orgId, path.jobId);
    if (!job) throw notFound("Collection job", path.jobId);
    return listJobValuesByMetric(principal.orgId, job, query);
  },
);
