import { apiRoute } from "../../shared/http/api-handler.ts";
import { createCollectionJob } from "../../shared/pipeline/create-job.ts";
import { createJobSchema } from "../../shared/schemas/job.ts";

export const handler = apiRoute({ body: createJobSchema, successStatus: 201 }, async ({ principal, body }) => ({
  data: await createCollectionJob(principal.orgId, body),
}));
