/**
 * Idempotency-Key on the POSTs that create something: the same key with the same request
 * answers the first response (with `Idempotent-Replayed: true`) and creates nothing more; the
 * same key with another request is a 409. A repeat that arrives while the first request still
 * runs waits for its answer, for a few seconds. Keys belong to the organization.
 */
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import { sleep } from "../concurrency.ts";
import { logger } from "../logger.ts";
import {
  claimIdempotencyKey,
  completeIdempotencyKey,
  releaseIdempotencyKey,
  requestFingerprint,
  type StoredResponse,
} from "../store/idempotency.ts";
import { ApiError, badRequest } from "./errors.ts";

export const IDEMPOTENCY_KEY_HEADER = "idempotency-key";
const MAX_KEY_LENGTH = 255;
/** Longest a repeat waits for the first request's answer before it is told to come back. */
const MAX_WAIT_MS = 10_000;
const POLL_MS = 100;
/** Locally and in tests without a Lambda context: about an API function's timeout. */
const DEFAULT_LOCK_MS = 30_000;

/** The request's key, validated; undefined when it sent none. */
export function idempotencyKeyOf(event: APIGatewayProxyEventV2): string | undefined {
  const key = event.headers?.[IDEMPOTENCY_KEY_HEADER];
  if (key === undefined) return undefined;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (key.length === 0 || key.length > MAX_KEY_LENGTH || /[\u0000-\u001f\u007f]/.test(key)) {
    throw badRequest(`Idempotency-Key must be 1 to ${MAX_KEY_LENGTH} characters, without control characters`);
  }
  return key;
}

export interface IdempotentRequest {
  orgId: string;
  key: string;
  /** The operation and what was sent to it: a repeat must send the same. */
  operationId: string;
  path: unknown;
  body: unknown;
  context: Context;
}

/** Runs `respond` once per key and request; repeats get its stored answer. */
export async function respondIdempotently(
  request: IdempotentRequest,
  respond: () => Promise<APIGatewayProxyStructuredResultV2>,
): Promise<APIGatewayProxyStructuredResultV2> {
  const { orgId, key } = request;
  const fingerprint = requestFingerprint(request.operationId, request.path, request.body);
  const remainingMs = request.context?.getRemainingTimeInMillis?.() ?? DEFAULT_LOCK_MS;
  const waitUntil = Date.now() + Math.min(MAX_WAIT_MS, Math.max(0, remainingMs - 2_000));
  for (;;) {
    const claim = await claimIdempotencyKey(orgId, key, fingerprint, remainingMs);
    if (claim.kind === "mismatch") {
      throw new ApiError(
        409,
        "idempotency_key_reused",
        "This Idempotency-Key was used with another request; use a new key for a new request",
      );
    }
    if (claim.kind === "completed") {
      const { statusCode, body } = claim.response;
      if (body === undefined) {
        throw new ApiError(
          409,
          "idempotency_response_unavailable",
          `The first request with this Idempotency-Key succeeded (${statusCode}), but its response was too large to keep; list the resource to find what it created`,
        );
      }
      return { statusCode, headers: { "content-type": "application/json", "idempotent-replayed": "true" }, body };
    }
    if (claim.kind === "claimed") return runClaimed(request, fingerprint, claim.lockedUntil, respond);
    if (Date.now() >= waitUntil) {
      throw new ApiError(
        409,
        "idempotency_key_in_progress",
        "A request with this Idempotency-Key is still running; retry after a moment",
        { headers: { "retry-after": "1" } },
      );
    }
    await sleep(POLL_MS);
  }
}

async function runClaimed(
  { orgId, key }: IdempotentRequest,
  fingerprint: string,
  lockedUntil: number,
  respond: () => Promise<APIGatewayProxyStructuredResultV2>,
) {
  let response: APIGatewayProxyStructuredResultV2;
  try {
    response = await respond();
  } catch (error) {
    await releaseIdempotencyKey(orgId, key, lockedUntil);
    throw error;
  }
  await storeAnswer(orgId, key, fingerprint, {
    statusCode: response.statusCode ?? 200,
    ...(typeof response.body === "string" ? { body: response.body } : {}),
  });
  return response;
}

const STORE_ATTEMPTS = 3;

/**
 * Stores the answer of a request that did what it was asked, trying a few times. If it
 * cannot, the client still gets the answer (failing it would invite a retry that creates
 * again); the key stays locked until its lock ends, and a repeat after that runs again.
 */
async function storeAnswer(orgId: string, key: string, fingerprint: string, response: StoredResponse) {
  for (let attempt = 1; ; attempt++) {
    try {
      await completeIdempotencyKey(orgId, key, fingerprint, response);
      return;
    } catch (error) {
      if (attempt >= STORE_ATTEMPTS) {
        logger.error("Idempotency-Key answer not stored", { error: error as Error });
        return;
      }
      await sleep(50 * 2 ** attempt);
    }
  }
}
