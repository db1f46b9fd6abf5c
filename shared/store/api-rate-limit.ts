/**
 * Each organization's API rate: a token bucket of `burst` requests refilled at
 * `requestsPerSecond`, over all its keys and every API function. Kept as the generic cell
 * rate algorithm on one item: `tat` is when the bucket would be full again; a request is
 * admitted while that stays within the burst's span of now, and moves it on by one
 * interval. One conditional write per request, no read (two when the bucket was idle).
 */
import { keys } from "../keys.ts";
import { conditionHeld, table } from "./table.ts";

export interface ApiRateLimit {
  requestsPerSecond: number;
  burst: number;
}

export type Admission = { admitted: true } | { admitted: false; retryAfterSeconds: number };

/** The bucket's item outlives its span by this much, then DynamoDB's TTL removes it. */
const EXPIRY_MARGIN_SECONDS = 3600;
/** Each write races others of the same organization; a lost race is tried again this often. */
const ATTEMPTS = 4;

export async function admitApiRequest(orgId: string, limit: ApiRateLimit, now = Date.now()): Promise<Admission> {
  const key = keys.apiRateLimit(orgId);
  const interval = 1000 / limit.requestsPerSecond;
  // The latest `tat` that still leaves room for one more request.
  const latest = now + limit.burst * interval - interval;
  const expiresAt = Math.ceil((now + limit.burst * interval) / 1000) + EXPIRY_MARGIN_SECONDS;
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const busy = await conditionHeld(
      table.update({
        Key: key,
        UpdateExpression: "SET tat = tat + :interval, expiresAt = :expiresAt",
        ConditionExpression: "tat > :now AND tat <= :latest",
        ExpressionAttributeValues: { ":interval": interval, ":now": now, ":latest": latest, ":expiresAt": expiresAt },
      }),
    );
    if (busy) return { admitted: true };
    const idle = await conditionHeld(
      table.update({
        Key: key,
        UpdateExpression: "SET tat = :next, expiresAt = :expiresAt",
        ConditionExpression: "attribute_not_exists(tat) OR tat <= :now",
        ExpressionAttributeValues: { ":next": now + interval, ":now": now, ":expiresAt": expiresAt },
      }),
    );
    if (idle) return { admitted: true };
    const item = await table.get(key, { ConsistentRead: true });
    const tat = Number(item?.tat ?? 0);
    // Full: room comes back when `tat` falls within the burst's span again.
    if (tat > latest) return { admitted: false, retryAfterSeconds: Math.max(1, Math.ceil((tat - latest) / 1000)) };
  }
  return { admitted: false, retryAfterSeconds: 1 };
}
