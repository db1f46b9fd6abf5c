/**
 * Idempotency-Key records: the first request with a key claims it, runs, and stores its
 * response; a repeat with the same request gets that response back, one with another request
 * a conflict. A record lives 24 h (DynamoDB's TTL deletes it later; until then an expired
 * record counts as absent). A request that fails releases its key, so a corrected one can
 * use it; one whose function died holds it only until its lock expires.
 */
import { createHash } from "node:crypto";
import { gunzipSync, gzipSync } from "node:zlib";
import { keys } from "../keys.ts";
import { conditionHeld, table } from "./table.ts";

export const IDEMPOTENCY_KEY_RETENTION_SECONDS = 24 * 3600;
/**
 * A compressed response over this is not kept (the record stays within DynamoDB's 400 KB with
 * room to spare); its repeats are told the first request succeeded and where to look.
 */
const MAX_STORED_RESPONSE_BYTES = 256 * 1024;

export interface StoredResponse {
  statusCode: number;
  /** The JSON body; absent when it was too large to keep. */
  body?: string;
}

export type Claim =
  /** This request runs; it completes or releases the key. */
  | { kind: "claimed"; lockedUntil: number }
  /** The first request finished: answer what it answered. */
  | { kind: "completed"; response: StoredResponse }
  /** Another request with this key: refuse it. */
  | { kind: "mismatch" }
  /** The first request is still running. */
  | { kind: "in_progress" };

/** A key's record sits under its organization; the key is hashed so any characters and lengths fit. */
export const idempotencyRecordKey = (orgId: string, idempotencyKey: string) =>
  keys.idempotencyRecord(orgId, createHash("sha256").update(idempotencyKey).digest("hex"));

/** What makes two requests the same: route, path parameters and body (object keys in any order). */
export function requestFingerprint(routeKey: string, path: unknown, body: unknown): string {
  return createHash("sha256")
    .update(JSON.stringify([routeKey, canonical(path), canonical(body)]))
    .digest("hex");
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([name, inner]) => [name, canonical(inner)]),
    );
  }
  return value;
}

/**
 * Claims `idempotencyKey` for a request, or says what became of the request that holds it.
 * `lockMs` is how long the claim holds without an answer (the function's remaining time).
 */
export async function claimIdempotencyKey(
  orgId: string,
  idempotencyKey: string,
  fingerprint: string,
  lockMs: number,
  now = Date.now(),
): Promise<Claim> {
  const key = idempotencyRecordKey(orgId, idempotencyKey);
  const lockedUntil = now + lockMs;
  const claimed = await conditionHeld(
    table.put({
      Item: {
        ...key,
        entity: "IdempotencyRecord",
        state: "IN_PROGRESS",
        fingerprint,
        lockedUntil,
        expiresAt: Math.floor(now / 1000) + IDEMPOTENCY_KEY_RETENTION_SECONDS,
      },
      // Absent, expired, or held by the same request whose function died before answering.
      ConditionExpression:
        "attribute_not_exists(pk) OR expiresAt < :nowSeconds OR (#state = :inProgress AND fingerprint = :fingerprint AND lockedUntil < :now)",
      ExpressionAttributeNames: { "#state": "state" },
      ExpressionAttributeValues: {
        ":nowSeconds": Math.floor(now / 1000),
        ":now": now,
        ":inProgress": "IN_PROGRESS",
        ":fingerprint": fingerprint,
      },
    }),
  );
  if (claimed) return { kind: "claimed", lockedUntil };
  const record = await table.get(key, { ConsistentRead: true });
  // Deleted (released) between the two calls: the caller asks again.
  if (!record) return { kind: "in_progress" };
  if (record.fingerprint !== fingerprint) return { kind: "mismatch" };
  if (record.state === "COMPLETED") return { kind: "completed", response: storedResponse(record) };
  return { kind: "in_progress" };
}

/** Stores the response of the request that claimed the key. */
export async function completeIdempotencyKey(
  orgId: string,
  idempotencyKey: string,
  fingerprint: string,
  response: StoredResponse,
): Promise<void> {
  const compressed = response.body === undefined ? undefined : gzipSync(response.body);
  const kept = compressed !== undefined && compressed.byteLength <= MAX_STORED_RESPONSE_BYTES;
  await table.update({
    Key: idempotencyRecordKey(orgId, idempotencyKey),
    UpdateExpression: kept
      ? "SET #state = :completed, statusCode = :statusCode, responseBody = :body REMOVE lockedUntil"
      : "SET #state = :completed, statusCode = :statusCode REMOVE lockedUntil",
    ConditionExpression: "fingerprint = :fingerprint",
    ExpressionAttributeNames: { "#state": "state" },
    ExpressionAttributeValues: {
      ":completed": "COMPLETED",
      ":statusCode": response.statusCode,
      ":fingerprint": fingerprint,
      ...(kept ? { ":body": compressed } : {}),
    },
  });
}

/** Frees the key of a request that failed, unless another request has taken it since. */
export async function releaseIdempotencyKey(orgId: string, idempotencyKey: string, lockedUntil: number): Promise<void> {
  await conditionHeld(
    table.delete({
      Key: idempotencyRecordKey(orgId, idempotencyKey),
      ConditionExpression: "#state = :inProgress AND lockedUntil = :lockedUntil",
      ExpressionAttributeNames: { "#state": "state" },
      ExpressionAttributeValues: { ":inProgress": "IN_PROGRESS", ":lockedUntil": lockedUntil },
    }),
  );
}

function storedResponse(record: Record<string, unknown>): StoredResponse {
  const body = record.responseBody instanceof Uint8Array ? gunzipSync(record.responseBody).toString("utf8") : undefined;
  return { statusCode: Number(record.statusCode), ...(body === undefined ? {} : { body }) };
}
