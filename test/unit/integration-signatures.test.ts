/** The platforms' webhook signatures as each documents them, checked on the raw body. */
import { createHmac } from "node:crypto";
import { sign } from "retell-sdk";
import { describe, expect, it } from "vitest";
import {
  platformSignatureHeaders,
  type SignedRequest,
  signatureProblem,
} from "../../shared/integrations/signatures.ts";

const body = '{"type":"post_call_transcription","data":{"conversation_id":"conv_1"}}';
const now = Date.UTC(2026, 11, 7, 12, 0, 0);
const hmac = (secret: string, message: string) => createHmac("sha256", secret).update(message).digest("hex");
const request = (overrides: Partial<SignedRequest>): SignedRequest => ({
  provider: "retell",
  rawBody: body,
  headers: {},
  secrets: ["current-secret"],
  now,
  ...overrides,
});

describe("integration webhook signatures", () => {
  it("Retell: accepts retell-sdk's own signature with the current or the previous secret", async () => {
    const signature = await sign(body, "previous-secret");
    const at = Number(/^v=(\d+)/.exec(signature)?.[1]);
    const check = (secrets: string[]) =>
      signatureProblem(request({ headers: { "x-retell-signature": signature }, secrets, now: at }));
    expect(check(["current-secret", "previous-secret"])).toBeUndefined();
    expect(check(["current-secret"])).toBe("signature does not match");
    expect(
      signatureProblem(request({ headers: { "x-retell-signature": signature }, now: at + 5 * 60_000 + 1 })),
    ).toMatch(/stale/);
  });

  it("ElevenLabs: t=<seconds>,v0=HMAC(secret, t.body), at most 30 minutes old", () => {
    const t = String(Math.floor(now / 1000) - 60);
    const header = (timestamp: string, digest = hmac("current-secret", `${timestamp}.${body}`)) => ({
      "elevenlabs-signature": `t=${timestamp},v0=${digest}`,
    });
    const check = (headers: Record<string, string>) => signatureProblem(request({ provider: "elevenlabs", headers }));
    expect(check(header(t))).toBeUndefined();
    expect(check(header(String(Math.floor(now / 1000) - 31 * 60)))).toMatch(/stale/);
    expect(check(header(t, hmac("other", `${t}.${body}`)))).toBe("signature does not match");
    expect(check({ "elevenlabs-signature": "v0=abc" })).toMatch(/malformed/);
    expect(check({})).toMatch(/missing/);
  });

  it("Vapi: a bearer token (or the legacy X-Vapi-Secret), or an HMAC in configurable headers", () => {
    const bearer = (headers: Record<string, string>) =>
      signatureProblem(request({ provider: "vapi", headers, vapiAuth: undefined }));
    expect(bearer({ authorization: "Bearer current-secret" })).toBeUndefined();
    expect(bearer({ "x-vapi-secret": "current-secret" })).toBeUndefined();
    expect(bearer({ authorization: "Bearer current-secre" })).toBe("credential does not match");
    expect(bearer({})).toMatch(/missing/);

    const vapiAuth = { type: "hmac" as const, signatureHeader: "x-signature", timestampHeader: "x-timestamp" };
    const hmacCheck = (timestamp: string, digest = hmac("current-secret", `${timestamp}.${body}`)) =>
      signatureProblem(
        request({ provider: "vapi", vapiAuth, headers: { "x-signature": digest, "x-timestamp": timestamp } }),
      );
    expect(hmacCheck(String(now))).toBeUndefined();
    expect(hmacCheck(String(Math.floor(now / 1000)))).toBeUndefined();
    expect(hmacCheck(String(now - 6 * 60_000))).toMatch(/stale/);
    expect(hmacCheck(String(now), hmac("current-secret", `${now}.${body} `))).toBe("signature does not match");
  });

  it("signs a payload as each platform does, for the CLI's replay, and the verifier accepts it", () => {
    const hmacAuth = { type: "hmac" as const, signatureHeader: "x-vapi-signature", timestampHeader: "x-vapi-ts" };
    for (const [provider, vapiAuth] of [["retell"], ["elevenlabs"], ["vapi"], ["vapi", hmacAuth]] as const) {
      const headers = platformSignatureHeaders(provider, body, "current-secret", vapiAuth, now);
      expect(signatureProblem(request({ provider, headers, vapiAuth })), provider).toBeUndefined();
      expect(signatureProblem(request({ provider, headers, vapiAuth, secrets: ["other"] })), provider).toBeDefined();
    }
  });
});
