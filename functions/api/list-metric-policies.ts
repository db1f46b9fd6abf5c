import { apiRoute } from "../../shared/http/api-handler.ts";
import { pageQuerySchema } from "../../shared/http/pagination.ts";
import { listPolicies } from "../../shared/store/policies.ts";

export const handler = apiRoute({ query: pageQuerySchema(100, 20) }, ({ principal, query }) =>
  listPolicies(principal.orgId, query),
);
