/**
 * A platform's webhook delivery, from raw request to stored call: find the integration by
 * its id (404 for an unknown id or another provider's path), verify the signature on the raw
 * body (401, nothing stored), map the payload (400 naming a missing field; events without a
 * finished call are acknowledged and ignored, as platforms disable endpoints that keep
 * failing), fit it to the call's limits, and store it once per external id: a redelivery
 * changes nothing, a later analysis of the same call adds its properties. Each delivery is
 * counted on its integration (failures with their reason), never logged with its payload.
 */
import { invalid, isDomainError, notFound } from "../errors.ts";
import { unauthorized } from "../http/errors.ts";
import { logger } from "../logger.ts";
import { type CreateCallInput, createCallSchema, type TranscriptSegment } from "../schemas/call.ts";
import { type IntegrationProvider, integrationProviders } from "../schemas/integration.ts";
import {
  callIdByExternalId,
  compressedTranscriptBytes,
  createCall,
  MAX_COMPRESSED_TRANSCRIPT_BYTES,
  updateCallProperties,
} from "../store/calls.ts";
import { type DeliveryTarget, deliveryTarget, recordDelivery } from "../store/integrations.ts";
import { withProperties } from "./call-fields.ts";
import { RETELL_CALL_EVENTS, retellAnalysisProperties, retellCall, retellEventSchema } from "./retell.ts";
import { signatureProblem } from "./signatures.ts";

export interface Delivery {
  provider: string;
  integrationId: string;
  rawBody: string;
  headers: Record<string, string | undefined>;
}

export type DeliveryOutcome =
  | { outcome: "created" | "duplicate" | "updated"; callId: string }
  | { outcome: "ignored"; reason: string };

/** What a mapping makes of a payload: the call, and what a later event adds to it when it exists. */
interface Mapped {
  call?: CreateCallInput;
  laterProperties?: [string, string][];
  ignored?: string;
}

const MAX_SEGMENTS = 100_000;
const MAX_SEGMENT_CHARS = 100_000;
const MAX_TOOL_INVOCATIONS = 10_000;

function parsedJson(rawBody: string): unknown {
  try {
    return JSON.parse(rawBody);
  } catch {
    throw invalid("The payload is not valid JSON");
  }
}

function mapPayload(target: DeliveryTarget, payload: unknown): Mapped {
  if (target.provider !== "retell") {
    throw invalid(`Calls from ${target.provider} cannot be mapped yet; the payload was not stored`);
  }
  const parsed = retellEventSchema.safeParse(payload);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join(".") ?? "";
    throw invalid(`The payload's ${field || "body"}: ${issue?.message ?? "invalid"}`, [
      { field: `body.${field}`, message: issue?.message },
    ]);
  }
  const event = parsed.data;
  if (!RETELL_CALL_EVENTS.has(event.event)) return { ignored: `Retell event ${event.event} carries no finished call` };
  return {
    call: retellCall(event, target),
    ...(event.event === "call_analyzed" ? { laterProperties: retellAnalysisProperties(event) } : {}),
  };
}

/**
 * The call within the limits of POST /v1/call: over-long texts and lists cut, and a
 * transcript too large to store cut to its first segments, with a last segment saying so.
 */
export function fittedCall(call: CreateCallInput): CreateCallInput {
  let transcript: TranscriptSegment[] = call.transcript.map((segment) =>
    segment.text.length > MAX_SEGMENT_CHARS
      ? { ...segment, text: `${segment.text.slice(0, MAX_SEGMENT_CHARS - 1)}…` }
      : segment,
  );
  const total = transcript.length;
  const toolInvocations = call.toolInvocations?.slice(0, MAX_TOOL_INVOCATIONS);
  const cut = (kept: number) => {
    const last = transcript[kept - 1];
    const at = last?.endOffsetMs ?? 0;
    return [
      ...transcript.slice(0, kept),
      {
        role: "AGENT" as const,
        text: `[transcript cut: the first ${kept} of ${total} segments are kept]`,
        startOffsetMs: at,
        endOffsetMs: at,
      },
    ];
  };
  if (transcript.length > MAX_SEGMENTS) transcript = cut(MAX_SEGMENTS - 1);
  let kept = transcript.length;
  while (kept > 0 && compressedTranscriptBytes({ transcript, toolInvocations }) > MAX_COMPRESSED_TRANSCRIPT_BYTES) {
    kept = Math.floor(kept / 2);
    transcript = cut(kept);
  }
  const fitted = { ...call, transcript, ...(toolInvocations ? { toolInvocations } : {}) };
  const checked = createCallSchema.safeParse(fitted);
  if (!checked.success) {
    const issue = checked.error.issues[0];
    throw invalid(`The mapped call's ${issue?.path.join(".")}: ${issue?.message}`, [
      { field: `body.${issue?.path.join(".")}`, message: issue?.message },
    ]);
  }
  return checked.data;
}

/** Stores the call once per external id; a later event of the same call adds its properties. */
async function storeOnce(orgId: string, mapped: Mapped): Promise<DeliveryOutcome> {
  const call = fittedCall(mapped.call as CreateCallInput);
  const externalId = call.externalId as string;
  const addLater = async (callId: string): Promise<DeliveryOutcome> => {
    if (!mapped.laterProperties?.length) return { outcome: "duplicate", callId };
    await updateCallProperties(orgId, callId, (current) => withProperties(current, mapped.laterProperties ?? []));
    return { outcome: "updated", callId };
  };
  const existing = await callIdByExternalId(orgId, externalId);
  if (existing) return addLater(existing);
  try {
    return { outcome: "created", callId: (await createCall(orgId, call)).id };
  } catch (error) {
    // The same call delivered twice at once: the other delivery stored it.
    if (!isDomainError(error, "conflict")) throw error;
    const stored = await callIdByExternalId(orgId, externalId);
    if (!stored) throw error;
    return addLater(stored);
  }
}

/**
 * `admit` counts an authentic delivery against its organization's API rate (429 beyond it:
 * the platform delivers again later).
 */
export async function receiveDelivery(
  delivery: Delivery,
  { admit, now = new Date() }: { admit: (orgId: string) => Promise<void>; now?: Date },
): Promise<DeliveryOutcome> {
  const target = await deliveryTarget(delivery.integrationId, now);
  // Another provider's path, or another organization's id: the same answer as an unknown id.
  if (
    !target ||
    !integrationProviders.includes(delivery.provider as IntegrationProvider) ||
    target.provider !== delivery.provider
  ) {
    throw notFound("Integration", delivery.integrationId);
  }
  const problem = signatureProblem({
    provider: target.provider,
    rawBody: delivery.rawBody,
    headers: delivery.headers,
    secrets: target.secrets,
    ...(target.vapiAuth ? { vapiAuth: target.vapiAuth } : {}),
    now: now.getTime(),
  });
  if (problem) {
    await recordDelivery(target.id, `401: ${problem}`);
    throw unauthorized(`Webhook signature refused: ${problem}`);
  }
  await admit(target.orgId);
  try {
    const mapped = mapPayload(target, parsedJson(delivery.rawBody));
    if (mapped.ignored) return { outcome: "ignored", reason: mapped.ignored };
    const outcome = await storeOnce(target.orgId, mapped);
    await recordDelivery(target.id);
    logger.info("Integration delivery stored", { integrationId: target.id, orgId: target.orgId, ...outcome });
    return outcome;
  } catch (error) {
    const status = isDomainError(error, "invalid") ? "400" : isDomainError(error, "too_large") ? "413" : "500";
    await recordDelivery(target.id, `${status}: ${error instanceof Error ? error.message : String(error)}`);
    throw error;
  }
}
