/**
 * An ElevenLabs integration end to end on the local stack: a post_call_transcription payload
 * built from ElevenLabs' documented shape, signed as ElevenLabs documents it and accepted by
 * @elevenlabs/elevenlabs-js's own `webhooks.constructEvent` (code we did not write), becomes
 * one call with the mapped fields; a replay changes nothing; a matching policy judges the call
 * once; a stale or wrong signature is 401.
 */
import { createHmac } from "node:crypto";
import { ElevenLabsClient } from "@elevenlabs/elevenlabs-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectJudgedOnceByPolicy, turnCountPolicy } from "../support/fixtures.ts";
import { startTestStack, type TestStack } from "../support/stack.ts";

const SECRET = "wsec_elevenlabs_0123456789abcdef";
const START_SECONDS = Date.UTC(2026, 11, 2, 9, 30, 0) / 1000;

/** ElevenLabs' header: `t=<unix seconds>,v0=<HMAC-SHA256(secret, t + "." + body)>`. */
const signature = (body: string, atSeconds = Math.floor(Date.now() / 1000), secret = SECRET) =>
  `t=${atSeconds},v0=${createHmac("sha256", secret).update(`${atSeconds}.${body}`).digest("hex")}`;

const transcription = (conversationId: string) => ({
  type: "post_call_transcription",
  event_timestamp: START_SECONDS + 60,
  data: {
    agent_id: "el_agent_7",
    conversation_id: conversationId,
    status: "done",
    transcript: [
      {
        role: "agent",
        message: "Hi, this is Maya from Acme.",
        time_in_call_secs: 0,
        tool_calls: null,
        tool_results: null,
      },
      { role: "user", message: "My package is late.", time_in_call_secs: 3.5, tool_calls: null, tool_results: null },
      {
        role: "agent",
        message: null,
        time_in_call_secs: 6,
        tool_calls: [
          {
            request_id: "req_1",
            tool_name: "track_package",
            params_as_json: '{"id":"P-9"}',
            tool_has_been_called: true,
          },
        ],
        tool_results: [
          { request_id: "req_1", tool_name: "track_package", result_value: "in transit", is_error: false },
        ],
      },
      { role: "agent", message: "It arrives tomorrow.", time_in_call_secs: 8.25, tool_calls: null, tool_results: null },
    ],
    metadata: {
      start_time_unix_secs: START_SECONDS,
      call_duration_secs: 12,
      termination_reason: "end_call tool was called.",
      phone_call: { direction: "outbound", external_number: "+442079460000", agent_number: "+442079460001" },
    },
    analysis: {
      call_successful: "success",
      transcript_summary: "Late package; arrives tomorrow.",
      evaluation_criteria_results: { resolved: { criteria_id: "resolved", result: "success", rationale: "told ETA" } },
      data_collection_results: { package_id: { data_collection_id: "package_id", value: "P-9", rationale: "said" } },
    },
    conversation_initiation_client_data: { dynamic_variables: { customer_tier: "gold" } },
  },
});

describe("ElevenLabs webhooks through an integration", () => {
  let stack: TestStack;
  let eventsUrl: string;
  beforeAll(async () => {
    // Policies gather new calls for a second (not the default minutes), checked every 300 ms.
    stack = await startTestStack({ env: { POLICY_WINDOW_SECONDS: "1" }, runtime: { scheduleIntervalMs: 300 } });
    const created = await stack.api("POST", "/v1/integrations", {
      provider: "elevenlabs",
      name: "Maya",
      secret: SECRET,
      agentMapping: { el_agent_7: "maya" },
    });
    eventsUrl = `${stack.baseUrl}${created.body.data.webhookUrl}`;
  });
  afterAll(() => stack?.stop());

  const post = async (body: string, header?: string) => {
    const response = await fetch(eventsUrl, {
      method: "POST",
      headers: { "content-type": "application/json", ...(header ? { "elevenlabs-signature": header } : {}) },
      body,
    });
    return { status: response.status, body: (await response.json()) as any };
  };

  it("stores post_call_transcription as one call with the mapped fields, and a replay changes nothing", async () => {
    const body = JSON.stringify(transcription("conv_el_001"));
    const header = signature(body);
    // ElevenLabs' own SDK accepts the signature our verifier accepts.
    const client = new ElevenLabsClient({ apiKey: "unused-in-verification" });
    await expect(client.webhooks.constructEvent(body, header, SECRET)).resolves.toMatchObject({
      type: "post_call_transcription",
    });
    const stored = await post(body, header);
    expect(stored.status, JSON.stringify(stored.body)).toBe(200);
    expect(stored.body.data).toEqual({ outcome: "created", callId: expect.any(String) });
    const call = (await stack.api("GET", `/v1/call/${stored.body.data.callId}`)).body.data;
    expect(call).toMatchObject({
      externalId: "conv_el_001",
      agentId: "maya",
      callDirection: "OUTBOUND",
      interfaceType: "PHONE",
      startedAt: "2026-12-02T09:30:00.000Z",
      endedAt: "2026-12-02T09:30:12.000Z",
      durationMs: 12_000,
      transcript: [
        { role: "AGENT", text: "Hi, this is Maya from Acme.", startOffsetMs: 0, endOffsetMs: 3500 },
        { role: "CUSTOMER", text: "My package is late.", startOffsetMs: 3500, endOffsetMs: 8250 },
        { role: "AGENT", text: "It arrives tomorrow.", startOffsetMs: 8250, endOffsetMs: 12_000 },
      ],
      toolInvocations: [
        { name: "track_package", startOffsetMs: 6000, parameters: { id: "P-9" }, result: "in transit" },
      ],
    });
    expect(call.properties).toEqual({
      terminationReason: "end_call tool was called.",
      "phoneCall.direction": "outbound",
      "phoneCall.external_number": "+442079460000",
      "phoneCall.agent_number": "+442079460001",
      callSuccessful: "success",
      transcriptSummary: "Late package; arrives tomorrow.",
      "evaluation.resolved": "success",
      "dataCollection.package_id": "P-9",
      "dynamicVariables.customer_tier": "gold",
    });
    const replay = await post(body, signature(body));
    expect(replay.body.data).toEqual({ outcome: "duplicate", callId: stored.body.data.callId });
    expect((await stack.api("GET", "/v1/call?externalId=conv_el_001")).body.data).toHaveLength(1);
  });

  it("refuses a stale, wrong or missing signature with 401, and ignores events without a transcript", async () => {
    const body = JSON.stringify(transcription("conv_el_forged"));
    const now = Math.floor(Date.now() / 1000);
    for (const header of [signature(body, now - 31 * 60), signature(body, now, "wsec_wrong_secret_000"), undefined]) {
      expect((await post(body, header)).status, header).toBe(401);
    }
    expect((await stack.api("GET", "/v1/call?externalId=conv_el_forged")).body.data).toEqual([]);
    const audio = JSON.stringify({ type: "post_call_audio", data: { conversation_id: "conv_el_audio" } });
    const ignored = await post(audio, signature(audio));
    expect(ignored.status).toBe(200);
    expect(ignored.body.data).toEqual({
      outcome: "ignored",
      reason: "ElevenLabs event post_call_audio carries no transcript",
    });
    const withoutStart = transcription("conv_el_nostart");
    delete (withoutStart.data.metadata as Record<string, unknown>).start_time_unix_secs;
    const missing = JSON.stringify(withoutStart);
    const refused = await post(missing, signature(missing));
    expect(refused.status).toBe(400);
    expect(refused.body.error.details).toEqual([
      expect.objectContaining({ field: "body.data.metadata.start_time_unix_secs" }),
    ]);
  });

  it("judges an ingested call once with a matching policy, exactly like an API-created one", async () => {
    const policyId = await turnCountPolicy(stack.api, "el-turns", "maya");
    const body = JSON.stringify(transcription("conv_el_policy"));
    const stored = await post(body, signature(body));
    expect(stored.body.data.outcome).toBe("created");
    await post(body, signature(body));
    await expectJudgedOnceByPolicy(stack.api, policyId, stored.body.data.callId, 3);
  });
});
