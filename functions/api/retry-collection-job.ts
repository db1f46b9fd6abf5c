import { z } from "zod";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { retryFailedItems } from "../../shared/pipeline/retry-job.ts";

export const handler = apiRoute(
  { path: z.object({ jobId: z.string().min(1) }), successStatus: 201 },
  async ({ principal, path }) => ({ data: await retryFailedItems(principal.orgId, path.jobId) }),
);
