/**
 * Webhook signatures: HMAC-SHA256 over `id.timestamp.body` with the organization's
 * webhook secret, sent as `X-Webhook-Signature: v1=<hex>`. Receivers recompute it and
 * reject old timestamps (replays).
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

export const generateWebhookSecret = () => `whsec_${randomBytes(32).toString("base64url")}`;

export function signWebhook(secret: string, id: string, timestamp: number, body: string): string {
  return `v1=${createHmac("sha256", secret).update(`${id}.${timestamp}.${body}`).digest("hex")}`;
}

export function verifyWebhook(
  secret: string,
  headers: { id: string; timestamp: string; signature: string },
  body: string,
  options: { toleranceSeconds?: number; now?: number } = {},
): boolean {
  const timestamp = Number(headers.timestamp);
  const now = options.now ?? Math.floor(Date.now() / 1000);
  if (!Number.isInteger(timestamp) || Math.abs(now - timestamp) > (options.toleranceSeconds ?? 300)) return false;
  const expected = Buffer.from(signWebhook(secret, headers.id, timestamp, body));
  const given = Buffer.from(headers.signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}
