import { z } from "zod";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { cancelJob } from "../../shared/store/jobs.ts";

export const handler = apiRoute({ path: z.object({ jobId: z.string().min(1) }) }, async ({ principal, path }) => ({
  data: await cancelJob(principal.orgId, path.jobId),
}));
