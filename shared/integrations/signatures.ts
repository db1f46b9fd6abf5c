/**
 * Webhook signatures of the voice platforms, checked on the raw body exactly as each
 * platform documents them, in constant time, against the integration's secret and (during
 * a rotation's grace period) its previous one.
 *
 * - Retell: `x-retell-signature: v=<unix ms>,d=<hex>`, d = HMAC-SHA256(API key, body + ms), ±5 minutes.
 * - ElevenLabs: `elevenlabs-signature: t=<unix s>,v0=<hex>`, v0 = HMAC-SHA256(secret, t + "." + body), at most 30 minutes old.
 * - Vapi: the server URL's credential: a bearer token (`authorization: Bearer …`, or the
 *   legacy `x-vapi-secret`), or an HMAC-SHA256 of `{timestamp}.{body}` (hex) in configurable
 *   headers, ±5 minutes.
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import type { IntegrationProvider } from "../schemas/integration.ts";

const RETELL_TOLERANCE_MS = 5 * 60_000;
const ELEVENLABS_MAX_AGE_MS = 30 * 60_000;
const VAPI_TOLERANCE_MS = 5 * 60_000;
/** A signature from a clock this far ahead of ours is refused as well. */
const FUTURE_TOLERANCE_MS = 5 * 60_000;

export interface VapiAuth {
  type: "bearer" | "hmac";
  signatureHeader: string;
  timestampHeader: string;
}

export interface SignedRequest {
  provider: IntegrationProvider;
  rawBody: string;
  /** Header names in lower case, as API Gateway passes them. */
  headers: Record<string, string | undefined>;
  /** The secrets that verify: the current one, and the previous one during its grace period. */
  secrets: string[];
  vapiAuth?: VapiAuth;
  now: number;
}

/** Why a request is refused (401), or undefined when its signature holds. */
export type SignatureProblem = string | undefined;

const hmacHex = (secret: string, message: string) => createHmac("sha256", secret).update(message).digest("hex");

/** Equal hex digests, compared in constant time (a malformed one is simply unequal). */
function sameHex(expected: string, given: string): boolean {
  if (!/^[0-9a-f]+$/i.test(given) || given.length !== expected.length) return false;
  return timingSafeEqual(Buffer.from(expected, "hex"), Buffer.from(given.toLowerCase(), "hex"));
}

/** Why the request is refused when no secret signed `message` as `digest`. */
const unlessSignedByAny = (secrets: string[], message: string, digest: string): SignatureProblem =>
  secrets.some((secret) => sameHex(hmacHex(secret, message), digest)) ? undefined : "signature does not match";

/** Equal secrets of any length, compared in constant time through their digests. */
const sameSecret = (expected: string, given: string) =>
  timingSafeEqual(createHash("sha256").update(expected).digest(), createHash("sha256").update(given).digest());

function withinWindow(signedAtMs: number, now: number, maxAgeMs: number): boolean {
  return Number.isFinite(signedAtMs) && now - signedAtMs <= maxAgeMs && signedAtMs - now <= FUTURE_TOLERANCE_MS;
}

function verifyRetell({ rawBody, headers, secrets, now }: SignedRequest): SignatureProblem {
  const header = headers["x-retell-signature"];
  if (!header) return "missing x-retell-signature header";
  const match = /^v=(\d+),d=([0-9a-fA-F]+)$/.exec(header.trim());
  if (!match) return "malformed x-retell-signature header";
  const signedAt = Number(match[1]);
  if (!withinWindow(signedAt, now, RETELL_TOLERANCE_MS)) return "stale signature (more than 5 minutes off)";
  return unlessSignedByAny(secrets, rawBody + match[1], match[2] as string);
}

function verifyElevenLabs({ rawBody, headers, secrets, now }: SignedRequest): SignatureProblem {
  const header = headers["elevenlabs-signature"];
  if (!header) return "missing ElevenLabs-Signature header";
  const parts = Object.fromEntries(
    header.split(",").map((part) => {
      const at = part.indexOf("=");
      return [part.slice(0, at).trim(), part.slice(at + 1).trim()];
    }),
  );
  const timestamp = parts.t;
  const digest = parts.v0;
  if (!timestamp || !/^\d+$/.test(timestamp) || !digest) return "malformed ElevenLabs-Signature header";
  if (!withinWindow(Number(timestamp) * 1000, now, ELEVENLABS_MAX_AGE_MS))
    return "stale signature (over 30 minutes old)";
  return unlessSignedByAny(secrets, `${timestamp}.${rawBody}`, digest);
}

function verifyVapi({ rawBody, headers, secrets, vapiAuth, now }: SignedRequest): SignatureProblem {
  if ((vapiAuth?.type ?? "bearer") === "bearer") {
    const bearer = /^Bearer\s+(.+)$/i.exec(headers.authorization ?? "")?.[1]?.trim();
    const given = bearer ?? headers["x-vapi-secret"];
    if (!given) return "missing Authorization: Bearer (or X-Vapi-Secret) header";
    return secrets.some((secret) => sameSecret(secret, given)) ? undefined : "credential does not match";
  }
  const { signatureHeader, timestampHeader } = vapiAuth as VapiAuth;
  const signature = headers[signatureHeader]?.trim().replace(/^sha256=/i, "");
  const timestamp = headers[timestampHeader]?.trim();
  if (!signature || !timestamp) return `missing ${signatureHeader} or ${timestampHeader} header`;
  if (!/^\d+$/.test(timestamp)) return `malformed ${timestampHeader} header`;
  // Seconds or milliseconds since the epoch.
  const signedAt = timestamp.length > 11 ? Number(timestamp) : Number(timestamp) * 1000;
  if (!withinWindow(signedAt, now, VAPI_TOLERANCE_MS)) return "stale signature (more than 5 minutes off)";
  return unlessSignedByAny(secrets, `${timestamp}.${rawBody}`, signature);
}

export function signatureProblem(request: SignedRequest): SignatureProblem {
  switch (request.provider) {
    case "retell":
      return verifyRetell(request);
    case "elevenlabs":
      return verifyElevenLabs(request);
    case "vapi":
      return verifyVapi(request);
  }
}

/**
 * The headers a platform sends with `rawBody`, signed with `secret` as it documents: what
 * `mcj integrations replay` sends to try a saved payload against a stack.
 */
export function platformSignatureHeaders(
  provider: IntegrationProvider,
  rawBody: string,
  secret: string,
  vapiAuth?: Partial<VapiAuth>,
  now = Date.now(),
): Record<string, string> {
  switch (provider) {
    case "retell":
      return { "x-retell-signature": `v=${now},d=${hmacHex(secret, rawBody + now)}` };
    case "elevenlabs": {
      const seconds = Math.floor(now / 1000);
      return { "elevenlabs-signature": `t=${seconds},v0=${hmacHex(secret, `${seconds}.${rawBody}`)}` };
    }
    case "vapi":
      if ((vapiAuth?.type ?? "bearer") === "bearer") return { authorization: `Bearer ${secret}` };
      return {
        [vapiAuth?.signatureHeader ?? "x-signature"]: hmacHex(secret, `${now}.${rawBody}`),
        [vapiAuth?.timestampHeader ?? "x-timestamp"]: String(now),
      };
  }
}
