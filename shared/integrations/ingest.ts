/**
 * A platform's webhook delivery, from raw request to stored call: find the integration by
 * its id (404 for an unknown id or another provider's path), verify the signature on the raw
 * body (401, nothing stored), map the payload (400 naming a missing field; events without a
 * finished call are acknowledged and ignored, as platforms disable endpoints that keep
 * failing), fit it to the call's limits, and store it once per external id: a redelivery
 * changes nothing, a later analysis of the same call adds its properties. Each delivery is
 * counted on its integration (failures with their reason), never logged with its payload.
 */
import type { z } from "zod";
import { invalid, isDomainError, notFound } from "../errors.ts";
import { unauthorized } from "../http/errors.ts";
import { logger } from "../logger.ts";
import {
  type CreateCallInput,
  createCallSchema,
  MAX_SEGMENT_TEXT_CHARS,
  MAX_TOOL_INVOCATIONS,
  MAX_TRANSCRIPT_SEGMENTS,
  type TranscriptSegment,
} from "../schemas/call.ts";
import { type IntegrationProvider, integrationProviders } from "../schemas/integration.ts";
import {
  type CallSummary,
  callIdByExternalId,
  compressedTranscriptBytes,
  createCall,
  getCallSummary,
  MAX_COMPRESSED_TRANSCRIPT_BYTES,
  updateCallProperties,
} from "../store/calls.ts";
import { type DeliveryTarget, deliveryTarget, recordDelivery } from "../store/integrations.ts";
import { flattened, withProperties } from "./call-fields.ts";
import { ELEVENLABS_CALL_EVENTS, elevenLabsCall, elevenLabsEventSchema } from "./elevenlabs.ts";
import { RETELL_CALL_EVENTS, retellAnalysisProperties, retellCall, retellEventSchema } from "./retell.ts";
import { signatureProblem } from "./signatures.ts";
import { VAPI_CALL_EVENTS, vapiCall, vapiEventSchema } from "./vapi.ts";

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

function parsedJson(rawBody: string): unknown {
  try {
    return JSON.parse(rawBody);
  } catch {
    throw invalid("The payload is not valid JSON");
  }
}

/** The payload as the provider's schema reads it, or 400 naming the first bad field. */
function parsedPayload<T>(schema: z.ZodType<T>, payload: unknown): T {
  const parsed = schema.safeParse(payload);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = issue?.path.join(".") ?? "";
  throw invalid(`The payload's ${field || "body"}: ${issue?.message ?? "invalid"}`, [
    { field: field ? `body.${field}` : "body", message: issue?.message },
  ]);
}

function mapPayload(target: DeliveryTarget, payload: unknown): Mapped {
  switch (target.provider) {
    case "retell": {
      const event = parsedPayload(retellEventSchema, payload);
      if (!RETELL_CALL_EVENTS.has(event.event))
        return { ignored: `Retell event ${event.event} carries no finished call` };
      return {
        call: retellCall(event, target),
        ...(event.event === "call_analyzed" ? { laterProperties: retellAnalysisProperties(event) } : {}),
      };
    }
    case "elevenlabs": {
      const event = parsedPayload(elevenLabsEventSchema, payload);
      if (!ELEVENLABS_CALL_EVENTS.has(event.type)) {
        return { ignored: `ElevenLabs event ${event.type} carries no transcript` };
      }
      return { call: elevenLabsCall(event, target) };
    }
    case "vapi": {
      const event = parsedPayload(vapiEventSchema, payload);
      if (!VAPI_CALL_EVENTS.has(event.message.type)) {
        return { ignored: `Vapi message ${event.message.type} carries no finished call` };
      }
      return { call: vapiCall(event, target) };
    }
  }
}

/**
 * The call within the limits of POST /v1/call: over-long texts and lists cut, and a
 * transcript too large to store cut to its first segments, with a last segment saying so.
 */
export function fittedCall(call: CreateCallInput): CreateCallInput {
  let transcript: TranscriptSegment[] = call.transcript.map((segment) =>
    segment.text.length > MAX_SEGMENT_TEXT_CHARS
      ? { ...segment, text: `${segment.text.slice(0, MAX_SEGMENT_TEXT_CHARS - 1)}…` }
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
  if (transcript.length > MAX_TRANSCRIPT_SEGMENTS) transcript = cut(MAX_TRANSCRIPT_SEGMENTS - 1);
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

/**
 * The call stored once per external id: created now, or the id of the one stored already
 * (also when another delivery of the same call stored it a moment ago).
 */
async function createOnce(
  orgId: string,
  call: CreateCallInput,
): Promise<{ created: CallSummary } | { existingId: string }> {
  const externalId = call.externalId as string;
  const existing = await callIdByExternalId(orgId, externalId);
  if (existing) return { existingId: existing };
  try {
    return { created: await createCall(orgId, call) };
  } catch (error) {
    if (!isDomainError(error, "conflict")) throw error;
    const stored = await callIdByExternalId(orgId, externalId);
    if (!stored) throw error;
    return { existingId: stored };
  }
}

/** Stores the call once per external id; a later event of the same call adds its properties. */
async function storeOnce(orgId: string, mapped: Mapped): Promise<DeliveryOutcome> {
  const stored = await createOnce(orgId, fittedCall(mapped.call as CreateCallInput));
  if ("created" in stored) return { outcome: "created", callId: stored.created.id };
  const callId = stored.existingId;
  if (!mapped.laterProperties?.length) return { outcome: "duplicate", callId };
  await updateCallProperties(orgId, callId, (current) => withProperties(current, mapped.laterProperties ?? []));
  return { outcome: "updated", callId };
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

/**
 * Roark's import routes (`POST /v1/vapi/call`, `POST /v1/retell/call`): a platform payload
 * sent with an API key, mapped as an integration's delivery is; a call already stored is 409
 * unless `skipAlreadyImported`, which answers that call instead.
 */
export async function importPlatformCall(
  orgId: string,
  provider: "vapi" | "retell",
  body: { properties?: Record<string, unknown>; skipAlreadyImported?: boolean } & Record<string, unknown>,
): Promise<CallSummary> {
  const payloadField = provider === "vapi" ? "vapiEndOfCallReportPayload" : "retellCallEndedPayload";
  const payload = body[payloadField] as Record<string, unknown>;
  const { properties, skipAlreadyImported = false } = body;
  // Roark takes Vapi's whole webhook body ({message}) or the message; Retell's body ({event, call}) or the call.
  const event =
    provider === "vapi"
      ? "message" in payload
        ? payload
        : { message: payload }
      : "call" in payload
        ? { event: "call_ended", ...payload }
        : { event: "call_ended", call: payload };
  const target = {
    provider,
    properties: Object.fromEntries(flattened("", properties)),
  } as Pick<DeliveryTarget, "provider" | "properties"> as DeliveryTarget;
  const mapped = withFieldsUnder(`body.${payloadField}`, () => mapPayload(target, event));
  if (mapped.ignored) throw invalid(mapped.ignored);
  const call = fittedCall(mapped.call as CreateCallInput);
  // Without skipAlreadyImported a stored call is createCall's 409, naming it.
  if (!skipAlreadyImported) return createCall(orgId, call);
  const stored = await createOnce(orgId, call);
  if ("created" in stored) return stored.created;
  // Deleted since its id was read: createCall says what stands in the way.
  return (await getCallSummary(orgId, stored.existingId)) ?? createCall(orgId, call);
}

/** Runs `map`, naming the fields of its 400s under `prefix` (the payload is a field of the body). */
function withFieldsUnder<T>(prefix: string, map: () => T): T {
  try {
    return map();
  } catch (error) {
    if (!isDomainError(error, "invalid") || !Array.isArray(error.details)) throw error;
    const details = (error.details as { field?: string; message?: string }[]).map((detail) => ({
      ...detail,
      field: detail.field?.replace(/^body/, prefix),
    }));
    throw invalid(error.message, details);
  }
}
