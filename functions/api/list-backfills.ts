import { apiRoute } from "../../shared/http/api-handler.ts";
import { pageQuerySchema } from "../../shared/http/pagination.ts";
import { listBackfills } from "../../shared/store/backfills.ts";

export const handler = apiRoute({ query: pageQuerySchema(100, 20) }, ({ principal, query }) =>
  listBackfills(principal.orgId, query),
);
