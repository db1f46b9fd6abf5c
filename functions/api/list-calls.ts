import { apiRoute } from "../../shared/http/api-handler.ts";
import { pageQuerySchema } from "../../shared/http/pagination.ts";
import { listCalls } from "../../shared/store/calls.ts";

export const handler = apiRoute({ query: pageQuerySchema(100, 20) }, ({ principal, query }) =>
  listCalls(principal.orgId, query.limit, query.after),
);
