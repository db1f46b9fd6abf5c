/** A platform's call is fitted to the call limits by cutting, never refused for its size. */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { fittedCall } from "../../shared/integrations/ingest.ts";
import { compressedTranscriptBytes, MAX_COMPRESSED_TRANSCRIPT_BYTES } from "../../shared/store/calls.ts";

const call = (texts: string[]) => ({
  externalId: "x",
  agentId: "a",
  callDirection: "INBOUND" as const,
  interfaceType: "PHONE" as const,
  startedAt: "2026-12-01T00:00:00.000Z",
  properties: {},
  transcript: texts.map((text, index) => ({
    role: index % 2 ? ("CUSTOMER" as const) : ("AGENT" as const),
    text,
    startOffsetMs: index * 1000,
    endOffsetMs: index * 1000 + 900,
  })),
});

describe("fitting a platform's call to the call limits", () => {
  it("cuts an over-long segment to the longest text a call keeps, marked", () => {
    const fitted = fittedCall(call(["a".repeat(150_000), "short"]));
    expect(fitted.transcript[0]?.text).toHaveLength(100_000);
    expect(fitted.transcript[0]?.text.endsWith("…")).toBe(true);
    expect(fitted.transcript[1]?.text).toBe("short");
  });

  it("keeps the first segments of a transcript too large to store, and says so in a last one", () => {
    // Incompressible text: 60 segments of 100,000 characters weigh about 4.5 MB compressed.
    const texts = Array.from({ length: 60 }, () => randomBytes(75_000).toString("base64"));
    const fitted = fittedCall(call(texts));
    expect(compressedTranscriptBytes(fitted)).toBeLessThanOrEqual(MAX_COMPRESSED_TRANSCRIPT_BYTES);
    const last = fitted.transcript.at(-1);
    const kept = fitted.transcript.length - 1;
    expect(last?.text).toBe(`[transcript cut: the first ${kept} of 60 segments are kept]`);
    expect(kept).toBeGreaterThan(0);
    expect(fitted.transcript.slice(0, kept).map((segment) => segment.text)).toEqual(texts.slice(0, kept));
  });
});
