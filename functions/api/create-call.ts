import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { createCall } from "../../shared/store/calls.ts";
import { assertRecordable, recordValues } from "../../shared/store/recorded-values.ts";

export const handler = apiRoute(contract["POST /v1/call"], async ({ principal, body }) => {
  const { customMetrics, ...input } = body;
  if (!customMetrics?.length) return createCall(principal.orgId, input);
  // Checked before the call is stored: a refused value refuses the whole request.
  await assertRecordable(principal.orgId, customMetrics);
  const call = await createCall(principal.orgId, input);
  const recorded = await recordValues(
    principal.orgId,
    customMetrics.map((value) => ({ ...value, callId: call.id })),
    { checked: true },
  );
  return { ...call, customMetrics: recorded };
});
