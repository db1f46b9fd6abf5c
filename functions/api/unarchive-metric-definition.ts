import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { setMetricArchived } from "../../shared/store/metrics.ts";

export const handler = apiRoute(contract["POST /v1/metric/definitions/{idOrSlug}/unarchive"], ({ principal, path }) =>
  setMetricArchived(principal.orgId, path.idOrSlug, false),
);
