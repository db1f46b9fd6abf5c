import { z } from "zod";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { notFound } from "../../shared/http/errors.ts";
import { getJob } from "../../shared/store/jobs.ts";

export const handler = apiRoute({ path: z.object({ jobId: z.string().min(1) }) }, async ({ principal, path }) => {
  const job = await getJob(principal.orgId, path.jobId);
  if (!job) throw notFound("Collection job", path.jobId);
  return { data: job };
});
