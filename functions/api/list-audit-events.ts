import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { listAuditEvents } from "../../shared/store/audit.ts";

export const handler = apiRoute(contract["GET /v1/audit-events"], ({ principal, query }) =>
  listAuditEvents(principal.orgId, query),
);
