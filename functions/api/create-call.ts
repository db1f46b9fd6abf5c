import { apiRoute } from "../../shared/http/api-handler.ts";
import { createCallSchema } from "../../shared/schemas/call.ts";
import { createCall } from "../../shared/store/calls.ts";

export const handler = apiRoute({ body: createCallSchema, successStatus: 201 }, async ({ principal, body }) => ({
  data: await createCall(principal.orgId, body),
}));
