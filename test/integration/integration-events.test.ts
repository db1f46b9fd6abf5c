/**
 * A Retell integration end to end on the local stack: payloads built from Retell's documented
 * shape, signed with retell-sdk's own `sign` (code we did not write), posted to the events
 * route without an API key; each becomes one call with the mapped fields, a replay changes
 * nothing, call_analyzed adds to the same call, a matching policy's job completes, and a bad
 * or stale signature is 401 with nothing stored.
 */
import { createHmac } from "node:crypto";
import { sign, verify } from "retell-sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectJudgedOnceByPolicy, turnCountPolicy } from "../support/fixtures.ts";
import { startTestStack, type TestStack } from "../support/stack.ts";

const RETELL_KEY = "key_4f1c2b7d9e0a_retell_test";
const START = Date.UTC(2026, 11, 1, 14, 0, 0);

/** A call_ended payload as Retell documents it (`{event, call}`), for call `callId`. */
function retellEvent(callId: string, event = "call_ended", extra: Record<string, unknown> = {}) {
  return {
    event,
    call: {
      call_type: "phone_call",
      from_number: "+14155550100",
      to_number: "+14155550199",
      direction: "inbound",
      call_id: callId,
      agent_id: "agent_retell_42",
      call_status: "ended",
      metadata: { crm: { ticket: "T-1001" } },
      retell_llm_dynamic_variables: { customer_name: "Ada" },
      start_timestamp: START,
      end_timestamp: START + 95_500,
      disconnection_reason: "user_hangup",
      recording_url: "https://example.com/recording.wav",
      transcript: "Agent: Hello, how can I help?\nUser: I need a refund, sorry.",
      transcript_object: [
        {
          role: "agent",
          content: "Hello, how can I help?",
          words: [
            { word: "Hello,", start: 0.5, end: 0.9 },
            { word: "help?", start: 1.6, end: 2.25 },
          ],
        },
        {
          role: "user",
          content: "I need a refund, sorry.",
          words: [
            { word: "I", start: 3.1, end: 3.2 },
            { word: "sorry.", start: 4.4, end: 5.05 },
          ],
        },
      ],
      transcript_with_tool_calls: [
        { role: "agent", content: "Hello, how can I help?" },
        {
          role: "tool_call_invocation",
          tool_call_id: "tc_1",
          name: "lookup_order",
          arguments: '{"orderId":"A-7"}',
        },
        { role: "tool_call_result", tool_call_id: "tc_1", content: '{"status":"shipped"}' },
      ],
      ...extra,
    },
  };
}

describe("Retell webhooks through an integration", () => {
  let stack: TestStack;
  let integrationId: string;
  let eventsUrl: string;
  beforeAll(async () => {
    stack = await startTestStack({ env: { POLICY_WINDOW_SECONDS: "1" }, runtime: { scheduleIntervalMs: 300 } });
    const created = await stack.api("POST", "/v1/integrations", {
      provider: "retell",
      name: "Support line",
      secret: RETELL_KEY,
      agentMapping: { agent_retell_42: "support-bot" },
      properties: { source: "retell" },
    });
    integrationId = created.body.data.id;
    eventsUrl = `${stack.baseUrl}${created.body.data.webhookUrl}`;
  });
  afterAll(() => stack?.stop());

  const post = async (body: string, headers: Record<string, string>, url = eventsUrl) => {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body,
    });
    return { status: response.status, body: (await response.json()) as any };
  };
  const signed = async (payload: unknown) => {
    const body = JSON.stringify(payload);
    return { body, headers: { "x-retell-signature": await sign(body, RETELL_KEY) } };
  };
  const callsWith = async (externalId: string) =>
    (await stack.api("GET", `/v1/call?externalId=${encodeURIComponent(externalId)}`)).body.data;

  it("stores call_ended as one call with the mapped fields, and a replay changes nothing", async () => {
    const { body, headers } = await signed(retellEvent("call_retell_001"));
    // Our verifier and Retell's agree on the signature it made.
    expect(await verify(body, RETELL_KEY, headers["x-retell-signature"])).toBe(true);
    const stored = await post(body, headers);
    expect(stored.status).toBe(200);
    expect(stored.body.data).toEqual({ outcome: "created", callId: expect.any(String) });
    const call = (await stack.api("GET", `/v1/call/${stored.body.data.callId}`)).body.data;
    expect(call).toMatchObject({
      externalId: "call_retell_001",
      agentId: "support-bot",
      callDirection: "INBOUND",
      interfaceType: "PHONE",
      startedAt: "2026-12-01T14:00:00.000Z",
      endedAt: "2026-12-01T14:01:35.500Z",
      durationMs: 95_500,
      transcript: [
        { role: "AGENT", text: "Hello, how can I help?", startOffsetMs: 500, endOffsetMs: 2250 },
        { role: "CUSTOMER", text: "I need a refund, sorry.", startOffsetMs: 3100, endOffsetMs: 5050 },
      ],
      toolInvocations: [{ name: "lookup_order", parameters: { orderId: "A-7" }, result: '{"status":"shipped"}' }],
    });
    expect(call.properties).toEqual({
      source: "retell",
      disconnectionReason: "user_hangup",
      recordingUrl: "https://example.com/recording.wav",
      fromNumber: "+14155550100",
      toNumber: "+14155550199",
      "metadata.crm.ticket": "T-1001",
      "dynamicVariables.customer_name": "Ada",
    });

    // Retell retries a delivery it thinks failed: the same call, nothing new.
    const replay = await post(body, headers);
    expect(replay.body.data).toEqual({ outcome: "duplicate", callId: stored.body.data.callId });
    expect(await callsWith("call_retell_001")).toHaveLength(1);
  });

  it("adds call_analyzed's analysis to the call call_ended stored, never a second call", async () => {
    const ended = await signed(retellEvent("call_retell_002"));
    const first = await post(ended.body, ended.headers);
    const analyzed = await signed(
      retellEvent("call_retell_002", "call_analyzed", {
        call_analysis: { call_summary: "Refund requested", user_sentiment: "Negative", call_successful: true },
      }),
    );
    const second = await post(analyzed.body, analyzed.headers);
    expect(second.body.data).toEqual({ outcome: "updated", callId: first.body.data.callId });
    const call = (await stack.api("GET", `/v1/call/${first.body.data.callId}`)).body.data;
    expect(call.properties).toMatchObject({
      "callAnalysis.call_summary": "Refund requested",
      "callAnalysis.user_sentiment": "Negative",
      "callAnalysis.call_successful": "true",
      "metadata.crm.ticket": "T-1001",
    });
    expect(await callsWith("call_retell_002")).toHaveLength(1);
    // call_analyzed alone (call_ended lost) still makes the call, with its analysis.
    const alone = await signed(
      retellEvent("call_retell_003", "call_analyzed", { call_analysis: { call_summary: "Billing" } }),
    );
    const created = await post(alone.body, alone.headers);
    expect(created.body.data.outcome).toBe("created");
    const onlyAnalyzed = (await stack.api("GET", `/v1/call/${created.body.data.callId}`)).body.data;
    expect(onlyAnalyzed.properties["callAnalysis.call_summary"]).toBe("Billing");
  });

  it("refuses a missing, wrong or stale signature with 401 and stores nothing", async () => {
    const body = JSON.stringify(retellEvent("call_retell_forged"));
    const stale = START; // December 2026's first afternoon: long before now, and signed correctly.
    const staleDigest = createHmac("sha256", RETELL_KEY)
      .update(body + stale)
      .digest("hex");
    const cases: [string, Record<string, string>][] = [
      ["missing", {}],
      ["wrong key", { "x-retell-signature": await sign(body, "key_someone_else_entirely") }],
      ["malformed", { "x-retell-signature": "v=abc,d=xyz" }],
      [
        "stale",
        {
          "x-retell-signature": `v=${Date.now() - 6 * 60_000},d=${createHmac("sha256", RETELL_KEY)
            .update(body + (Date.now() - 6 * 60_000))
            .digest("hex")}`,
        },
      ],
      ["ancient", { "x-retell-signature": `v=${stale},d=${staleDigest}` }],
    ];
    for (const [what, headers] of cases) {
      const refused = await post(body, headers);
      expect(refused.status, what).toBe(401);
      expect(refused.body.error.code, what).toBe("unauthorized");
    }
    // A body changed after signing.
    const { headers } = await signed(retellEvent("call_retell_forged"));
    expect((await post(body.replace("Ada", "Eve"), headers)).status).toBe(401);
    expect(await callsWith("call_retell_forged")).toEqual([]);
    const integration = (await stack.api("GET", `/v1/integrations/${integrationId}`)).body.data;
    expect(integration.failedCount).toBeGreaterThanOrEqual(6);
    expect(integration.lastError).toBe("401: signature does not match");
    expect(JSON.stringify(integration)).not.toContain(RETELL_KEY);
  });

  it("answers 404 for an unknown integration or another provider's path, 413 beyond the size limit, 400 naming a missing field, 200 for events without a call", async () => {
    const { body, headers } = await signed(retellEvent("call_retell_404"));
    expect((await post(body, headers, `${stack.baseUrl}/v1/integrations/retell/int_unknown/events`)).status).toBe(404);
    const wrongProvider = `${stack.baseUrl}/v1/integrations/elevenlabs/${integrationId}/events`;
    expect((await post(body, headers, wrongProvider)).status).toBe(404);

    // A body beyond what API Gateway and Lambda carry: 413, even signed.
    const huge = JSON.stringify({ ...retellEvent("call_retell_huge"), padding: "x".repeat(6 * 1024 * 1024) });
    const tooLarge = await post(huge, { "x-retell-signature": await sign(huge, RETELL_KEY) });
    expect(tooLarge.status).toBe(413);
    expect(await callsWith("call_retell_huge")).toEqual([]);
    // A body API Gateway hands over base64-encoded (a content type it takes for binary) is
    // verified and read as the bytes the platform signed.
    const binary = await signed(retellEvent("call_retell_binary"));
    const decoded = await post(binary.body, { ...binary.headers, "content-type": "application/octet-stream" });
    expect(decoded.status, JSON.stringify(decoded.body)).toBe(200);
    expect(await callsWith("call_retell_binary")).toHaveLength(1);

    const notJson = "{not json";
    expect((await post(notJson, { "x-retell-signature": await sign(notJson, RETELL_KEY) })).status).toBe(400);
    const withoutId = retellEvent("x");
    delete (withoutId.call as Record<string, unknown>).call_id;
    const missing = await signed(withoutId);
    const refused = await post(missing.body, missing.headers);
    expect(refused.status).toBe(400);
    expect(refused.body.error.details).toEqual([expect.objectContaining({ field: "body.call.call_id" })]);

    const started = await signed(retellEvent("call_retell_started", "call_started"));
    const ignored = await post(started.body, started.headers);
    expect(ignored.status).toBe(200);
    expect(ignored.body.data).toEqual({
      outcome: "ignored",
      reason: "Retell event call_started carries no finished call",
    });
    expect(await callsWith("call_retell_started")).toEqual([]);
  });

  it("judges an ingested call with a matching policy, exactly like an API-created one", async () => {
    const policyId = await turnCountPolicy(stack.api, "retell-turns", "support-bot");
    const { body, headers } = await signed(retellEvent("call_retell_policy"));
    const stored = await post(body, headers);
    await post(body, headers);
    await expectJudgedOnceByPolicy(stack.api, policyId, stored.body.data.callId, 2);
  });

  it("imports Retell's call_ended through Roark's POST /v1/retell/call with an API key", async () => {
    const created = await stack.api("POST", "/v1/retell/call", {
      retellCallEndedPayload: retellEvent("call_retell_roark"),
      properties: { campaign: "spring" },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body.data).toMatchObject({
      externalId: "call_retell_roark",
      // No integration, so no agent mapping: Retell's own agent id.
      agentId: "agent_retell_42",
      durationMs: 95_500,
      segmentCount: 2,
      properties: expect.objectContaining({ campaign: "spring", "dynamicVariables.customer_name": "Ada" }),
    });
    // Retell's `call` alone is taken too; a payload without what the mapping needs is 400 naming it.
    const bare = await stack.api("POST", "/v1/retell/call", {
      retellCallEndedPayload: retellEvent("call_retell_bare").call,
    });
    expect(bare.status).toBe(201);
    const missing = await stack.api("POST", "/v1/retell/call", { retellCallEndedPayload: { call: { call_id: "x" } } });
    expect(missing.status).toBe(400);
    expect(missing.body.error.details).toEqual([
      expect.objectContaining({ field: "body.retellCallEndedPayload.call.agent_id" }),
    ]);
  });
});
