/**
 * Vapi integrations end to end on the local stack: an end-of-call-report typed by Vapi's
 * server SDK, authenticated with the server URL's bearer token or with an
 * HMAC of `{timestamp}.{body}`, becomes one call with the mapped fields; a replay changes
 * nothing; a matching policy judges the call once; a wrong credential or a stale HMAC is
 * 401 with nothing stored.
 */
import { createHmac } from "node:crypto";
import type { Vapi } from "@vapi-ai/server-sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectJudgedOnceByPolicy, turnCountPolicy } from "../support/fixtures.ts";
import { startTestStack, type TestStack } from "../support/stack.ts";

const TOKEN = "vapi-bearer-token-0123456789";
const HMAC_SECRET = "vapi-hmac-secret-abcdef";
const STARTED = "2026-12-03T16:00:00.000Z";
const T0 = Date.parse(STARTED);

/**
 * Vapi's server message, typed by Vapi's own SDK (`@vapi-ai/server-sdk`): a field renamed or
 * made required there fails the typecheck here before the mapping meets it in production.
 */
const report = (callId: string): { message: Vapi.ServerMessageEndOfCallReport } => ({
  message: {
    type: "end-of-call-report",
    endedReason: "customer-ended-call",
    startedAt: STARTED,
    endedAt: "2026-12-03T16:00:42.500Z",
    call: {
      id: callId,
      orgId: "vapi-org",
      assistantId: "asst_vapi_1",
      type: "outboundPhoneCall",
      createdAt: STARTED,
      updatedAt: "2026-12-03T16:00:43.000Z",
    },
    assistant: { metadata: { team: "collections" } },
    analysis: { summary: "Payment plan agreed", successEvaluation: "true" },
    artifact: {
      recordingUrl: "https://storage.vapi.ai/rec.wav",
      messages: [
        { role: "system", message: "You are a helpful agent.", time: T0, secondsFromStart: 0 },
        { role: "bot", message: "Hello, this is Acme.", time: T0 + 1200, endTime: T0 + 2700, secondsFromStart: 1.2 },
        { role: "user", message: "I can pay half now.", time: T0 + 4000, endTime: T0 + 5600, secondsFromStart: 4 },
        {
          role: "tool_calls",
          message: "",
          time: T0 + 6000,
          secondsFromStart: 6,
          toolCalls: [
            { id: "call_t1", type: "function", function: { name: "create_plan", arguments: '{"months":2}' } },
          ],
        },
        {
          role: "tool_call_result",
          toolCallId: "call_t1",
          name: "create_plan",
          result: "plan created",
          time: T0 + 6500,
          secondsFromStart: 6.5,
        },
        { role: "bot", message: "Done, two months.", time: T0 + 7000, endTime: T0 + 8250, secondsFromStart: 7 },
      ],
    },
  },
});

/** A server message that carries no finished call. */
const statusUpdate = (): { message: Vapi.ServerMessageStatusUpdate } => ({
  message: { type: "status-update", status: "in-progress" },
});

describe("Vapi webhooks through an integration", () => {
  let stack: TestStack;
  let bearerUrl: string;
  let hmacUrl: string;
  beforeAll(async () => {
    // Policies gather new calls for a second (not the default minutes), checked every 300 ms.
    stack = await startTestStack({ env: { POLICY_WINDOW_SECONDS: "1" }, runtime: { scheduleIntervalMs: 300 } });
    const bearer = await stack.api("POST", "/v1/integrations", { provider: "vapi", name: "Vapi token", secret: TOKEN });
    const hmac = await stack.api("POST", "/v1/integrations", {
      provider: "vapi",
      name: "Vapi HMAC",
      secret: HMAC_SECRET,
      vapiAuth: { type: "hmac" },
      agentMapping: { asst_vapi_1: "collections-bot" },
    });
    bearerUrl = `${stack.baseUrl}${bearer.body.data.webhookUrl}`;
    hmacUrl = `${stack.baseUrl}${hmac.body.data.webhookUrl}`;
  });
  afterAll(() => stack?.stop());

  const post = async (url: string, body: string, headers: Record<string, string>) => {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body,
    });
    return { status: response.status, body: (await response.json()) as any };
  };
  const hmacHeaders = (body: string, at = Date.now(), secret = HMAC_SECRET) => ({
    "x-timestamp": String(at),
    "x-signature": createHmac("sha256", secret).update(`${at}.${body}`).digest("hex"),
  });

  it("stores an end-of-call report sent with the bearer token as one call with the mapped fields", async () => {
    const body = JSON.stringify(report("vapi_call_001"));
    const stored = await post(bearerUrl, body, { authorization: `Bearer ${TOKEN}` });
    expect(stored.status, JSON.stringify(stored.body)).toBe(200);
    expect(stored.body.data.outcome).toBe("created");
    const call = (await stack.api("GET", `/v1/call/${stored.body.data.callId}`)).body.data;
    expect(call).toMatchObject({
      externalId: "vapi_call_001",
      agentId: "asst_vapi_1",
      callDirection: "OUTBOUND",
      interfaceType: "PHONE",
      startedAt: STARTED,
      endedAt: "2026-12-03T16:00:42.500Z",
      durationMs: 42_500,
      transcript: [
        { role: "AGENT", text: "Hello, this is Acme.", startOffsetMs: 1200, endOffsetMs: 2700 },
        { role: "CUSTOMER", text: "I can pay half now.", startOffsetMs: 4000, endOffsetMs: 5600 },
        { role: "AGENT", text: "Done, two months.", startOffsetMs: 7000, endOffsetMs: 8250 },
      ],
      toolInvocations: [
        { name: "create_plan", startOffsetMs: 6000, parameters: { months: 2 }, result: "plan created" },
      ],
    });
    expect(call.properties).toEqual({
      endedReason: "customer-ended-call",
      recordingUrl: "https://storage.vapi.ai/rec.wav",
      summary: "Payment plan agreed",
      successEvaluation: "true",
      "assistantMetadata.team": "collections",
    });
    // The legacy header carries the same credential; the same call again changes nothing.
    const replay = await post(bearerUrl, body, { "x-vapi-secret": TOKEN });
    expect(replay.body.data).toEqual({ outcome: "duplicate", callId: stored.body.data.callId });
    expect((await post(bearerUrl, body, { authorization: "Bearer not-the-token" })).status).toBe(401);
  });

  it("verifies an HMAC of timestamp.body, refuses a stale or wrong one, and ignores other server messages", async () => {
    const body = JSON.stringify(report("vapi_call_002"));
    expect((await post(hmacUrl, body, hmacHeaders(body, Date.now() - 6 * 60_000))).status).toBe(401);
    expect((await post(hmacUrl, body, hmacHeaders(body, Date.now(), "vapi-other-secret"))).status).toBe(401);
    expect((await post(hmacUrl, body, { authorization: `Bearer ${HMAC_SECRET}` })).status).toBe(401);
    expect((await stack.api("GET", "/v1/call?externalId=vapi_call_002")).body.data).toEqual([]);
    const stored = await post(hmacUrl, body, hmacHeaders(body));
    expect(stored.status, JSON.stringify(stored.body)).toBe(200);
    const call = (await stack.api("GET", `/v1/call/${stored.body.data.callId}`)).body.data;
    expect(call.agentId).toBe("collections-bot");

    const update = JSON.stringify(statusUpdate());
    const ignored = await post(hmacUrl, update, hmacHeaders(update));
    expect(ignored.body.data).toEqual({
      outcome: "ignored",
      reason: "Vapi message status-update carries no finished call",
    });
  });

  it("imports Vapi's report through Roark's POST /v1/vapi/call with an API key: 409 for a stored call unless skipAlreadyImported", async () => {
    const body = {
      vapiEndOfCallReportPayload: report("vapi_call_roark"),
      properties: { campaign: { name: "spring" } },
    };
    const created = await stack.api("POST", "/v1/vapi/call", body);
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body.data).toMatchObject({
      externalId: "vapi_call_roark",
      agentId: "asst_vapi_1",
      segmentCount: 3,
      properties: expect.objectContaining({ "campaign.name": "spring", endedReason: "customer-ended-call" }),
    });
    const again = await stack.api("POST", "/v1/vapi/call", body);
    expect(again.status).toBe(409);
    expect(again.body.error.details).toEqual({ callId: created.body.data.id });
    const skipped = await stack.api("POST", "/v1/vapi/call", { ...body, skipAlreadyImported: true });
    expect(skipped.body.data.id).toBe(created.body.data.id);
    // The message alone (without Vapi's {message} envelope) is taken too.
    const bare = await stack.api("POST", "/v1/vapi/call", {
      vapiEndOfCallReportPayload: report("vapi_call_bare").message,
    });
    expect(bare.status).toBe(201);
    expect((await stack.client(undefined)("POST", "/v1/vapi/call", body)).status).toBe(401);
  });

  it("judges an ingested call once with a matching policy, exactly like an API-created one", async () => {
    const policyId = await turnCountPolicy(stack.api, "vapi-turns", "asst_vapi_1");
    const body = JSON.stringify(report("vapi_call_policy"));
    const stored = await post(bearerUrl, body, { authorization: `Bearer ${TOKEN}` });
    expect(stored.body.data.outcome).toBe("created");
    await post(bearerUrl, body, { authorization: `Bearer ${TOKEN}` });
    await expectJudgedOnceByPolicy(stack.api, policyId, stored.body.data.callId, 3);
  });
});
