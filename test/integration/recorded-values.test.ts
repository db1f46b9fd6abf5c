/**
 * Values the agent records itself (VoiceRun's custom metrics): sent for stored calls, idempotent
 * by the client's id, rolled up like computed values, and gone with their call.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client } from "../../sdk/src/index.ts";
import { builtInMetric, createCalls, createMetrics, sampleCall } from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitForRollups } from "../support/stack.ts";

describe("values the agent records", () => {
  let stack: TestStack;
  let first: string;
  let second: string;
  const range = "startDate=2026-11-01&endDate=2026-11-02";
  const aggregate = async (query = "") =>
    (await stack.api("GET", `/v1/custom-metrics/aggregate?${range}${query}`)).body.data;

  beforeAll(async () => {
    stack = await startTestStack();
    // sampleCall: started 2026-11-01 09:00 UTC, region US (index 0) and EU (index 1).
    [first, second] = (await createCalls(stack.api, 2, { externalId: undefined })) as [string, string];
    // A definition's slug, which recorded values may not use as their name.
    await createMetrics(stack.api, [builtInMetric("turns-defined", { kind: "TURN_COUNT" }, "COUNT")]);
  });
  afterAll(() => stack?.stop());

  const values = () => [
    { id: "v1", callId: first, name: "booking_attempt", value: 2 },
    { id: "v2", callId: first, name: "booking_attempt", value: 1, labels: { topic: "pricing" } },
    { id: "v3", callId: second, name: "booking_attempt", value: 4, labels: { topic: "pricing" } },
    { id: "v4", callId: first, name: "transfer_requested", value: true },
    { id: "v5", callId: second, name: "transfer_requested", value: false },
  ];

  it("rolls recorded values up like computed ones, each id once however often it is sent", async () => {
    const sent = await stack.api("POST", "/v1/custom-metrics/values", { values: values() });
    expect(sent.status).toBe(200);
    expect(sent.body.data).toEqual({ recorded: 5, duplicates: 0 });
    // Sent again, through the SDK: nothing more is stored or counted.
    const client = new Client({ baseURL: stack.baseUrl, apiKey: stack.apiKey });
    expect(await client.analytics.record({ values: values() })).toEqual({ recorded: 0, duplicates: 5 });
    await waitForRollups();

    expect(await aggregate()).toEqual({ booking_attempt: 7, transfer_requested: 1 });
    expect(await aggregate("&stats=true&metricNames=transfer_requested")).toEqual({
      transfer_requested: { value: 1, aggregation: "sum", count: 2, sum: 1, average: 0.5, passRate: 0.5 },
    });
    expect(await aggregate("&groupBy=topic&metricNames=booking_attempt")).toEqual([
      { topic: "", metrics: { booking_attempt: 2 } },
      { topic: "pricing", metrics: { booking_attempt: 5 } },
    ]);
    expect(await aggregate("&groupBy=region&metricNames=booking_attempt")).toEqual([
      { region: "EU", metrics: { booking_attempt: 4 } },
      { region: "US", metrics: { booking_attempt: 3 } },
    ]);
    const names = (await stack.api("GET", "/v1/custom-metrics/names")).body.data;
    expect(names).toEqual(expect.arrayContaining(["booking_attempt", "transfer_requested"]));
    const tags = (await stack.api("GET", "/v1/custom-metrics/tags?metricName=booking_attempt")).body.data;
    expect(tags).toMatchObject({ topic: ["pricing"], region: ["EU", "US"] });
    const daily = (await stack.api("GET", `/v1/custom-metrics/daily?${range}&metricNames=booking_attempt`)).body.data;
    expect(daily).toEqual([{ date: "2026-11-01", metrics: { booking_attempt: 7 } }]);
    const session = (await stack.api("GET", `/v1/custom-metrics/sessions/${first}`)).body.data;
    expect(session.result.map((entry: any) => [entry.metric.metric_name, entry.value[1]]).sort()).toEqual([
      ["booking_attempt", "3"],
      ["transfer_requested", "1"],
    ]);
  });

  it("takes recorded values with the call itself, refusing the call when a value is invalid", async () => {
    const at = "2026-11-03T10:00:00Z";
    const body = (externalId: string, customMetrics: object[]) => ({
      ...sampleCall({ externalId, startedAt: at, endedAt: "2026-11-03T10:01:00Z" }),
      customMetrics,
    });
    const created = await stack.api(
      "POST",
      "/v1/call",
      body("with-values", [
        { id: "w1", name: "bookings_made", value: 2 },
        { id: "w2", name: "bookings_made", value: 1, labels: { topic: "pricing" } },
      ]),
    );
    expect(created.status).toBe(201);
    expect(created.body.data.customMetrics).toEqual({ recorded: 2, duplicates: 0 });
    // A value for the same call sent afterwards by the externalId, one id again: stored once.
    const later = await stack.api("POST", "/v1/custom-metrics/values", {
      values: [
        { id: "w2", externalId: "with-values", name: "bookings_made", value: 1 },
        { id: "w3", externalId: "with-values", name: "bookings_made", value: 4 },
      ],
    });
    expect(later.body.data).toEqual({ recorded: 1, duplicates: 1 });

    const refused = await stack.api(
      "POST",
      "/v1/call",
      body("refused-call", [{ id: "r1", name: "turns-defined", value: 1 }]),
    );
    expect(refused.status).toBe(400);
    expect((await stack.api("GET", "/v1/call?externalId=refused-call")).body.data).toEqual([]);
    const badValue = await stack.api("POST", "/v1/call", body("bad-value", [{ id: "r2", name: "x", value: "high" }]));
    expect(badValue.status).toBe(400);

    await waitForRollups();
    const day = "startDate=2026-11-03&endDate=2026-11-04&metricNames=bookings_made";
    expect((await stack.api("GET", `/v1/custom-metrics/aggregate?${day}`)).body.data).toEqual({ bookings_made: 7 });
  });

  it("answers 400 naming unknown calls, definition slugs and bad values, storing nothing", async () => {
    const unknown = await stack.api("POST", "/v1/custom-metrics/values", {
      values: [
        { id: "x1", callId: first, name: "late_value", value: 1 },
        { id: "x2", callId: "no-such-call", name: "late_value", value: 1 },
      ],
    });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.details).toMatchObject({ unknownCallIds: ["no-such-call"] });
    const defined = await stack.api("POST", "/v1/custom-metrics/values", {
      values: [{ id: "x3", callId: first, name: "turns-defined", value: 1 }],
    });
    expect(defined.status).toBe(400);
    expect(defined.body.error.message).toContain("turns-defined");
    for (const bad of [
      { id: "x4", callId: first, name: "Bad Name", value: 1 },
      { id: "x5", callId: first, name: "ok", value: "text" },
      { id: "x6", name: "ok", value: 1 },
    ]) {
      expect((await stack.api("POST", "/v1/custom-metrics/values", { values: [bad] })).status).toBe(400);
    }
    await waitForRollups();
    expect((await aggregate()).late_value).toBeUndefined();
  });

  it("takes a call's values out of the analytics when the call is deleted", async () => {
    expect((await stack.api("DELETE", `/v1/call/${second}`)).status).toBe(200);
    await waitForRollups();
    expect(await aggregate()).toEqual({ booking_attempt: 3, transfer_requested: 1 });
    expect((await stack.api("DELETE", `/v1/call/${second}`)).status).toBe(200);
    await waitForRollups();
    expect(await aggregate("&metricNames=booking_attempt")).toEqual({ booking_attempt: 3 });
  });
});
