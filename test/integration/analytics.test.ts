/**
 * The custom-metrics API on a fixed data set, read from rollups written by the real
 * pipeline — with every SQS batch and every stream batch (the rollup applier's too)
 * delivered twice, some twins at the same time, so exact numbers also prove that
 * redelivery never double-counts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { countDeliveries } from "../support/deliveries.ts";
import { builtInMetric, createCalls, createMetrics, llmMetric } from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitForJobEnd, waitForRollups } from "../support/stack.ts";

/** The consumers that carry values into rollups. */
const consumers = ["evaluator", "rollup-applier"];

const calls = [
  {
    key: "c1",
    agentId: "A",
    environmentId: "prod",
    region: "EU",
    startedAt: "2026-03-08T04:00:00Z",
    durationMs: 10_000,
  },
  {
    key: "c2",
    agentId: "A",
    environmentId: "prod",
    region: "US",
    startedAt: "2026-03-08T06:30:00Z",
    durationMs: 20_000,
  },
  {
    key: "c3",
    agentId: "B",
    environmentId: "staging",
    region: "EU",
    startedAt: "2026-03-08T20:00:00Z",
    durationMs: 30_000,
  },
  {
    key: "c4",
    agentId: "B",
    environmentId: "prod",
    region: "EU",
    // 00:30 in New York on 2026-03-09, the day after the DST change (23:30 at the old offset).
    startedAt: "2026-03-09T04:30:00Z",
    durationMs: 40_000,
  },
  {
    key: "c5",
    agentId: "A",
    environmentId: "prod",
    region: "EU",
    startedAt: "2026-03-09T19:00:00Z",
    durationMs: 50_000,
  },
  {
    key: "c6",
    agentId: "A",
    environmentId: "prod",
    region: "EU",
    startedAt: "2026-03-10T12:00:00Z",
    durationMs: 60_000,
  },
];

describe("custom-metrics analytics", () => {
  let stack: TestStack;
  const ids: Record<string, string> = {};
  const get = (path: string) => stack.api("GET", path);
  const deliveries = countDeliveries(consumers);

  beforeAll(async () => {
    stack = await startTestStack({
      runtime: {
        deliverEachBatchTwice: true,
        twinDelivery: "alternating",
        handlerOverrides: deliveries.handlerOverrides,
      },
    });
    for (const call of calls) {
      const [id] = await createCalls(stack.api, 1, {
        externalId: `session-${call.key}`,
        agentId: call.agentId,
        environmentId: call.environmentId,
        properties: { region: call.region },
        startedAt: call.startedAt,
        endedAt: new Date(Date.parse(call.startedAt) + call.durationMs).toISOString(),
        durationMs: call.durationMs,
      });
      ids[call.key] = id!;
    }
    const metrics = await createMetrics(stack.api, [
      builtInMetric("an-dur", { kind: "CALL_DURATION" }),
      builtInMetric("an-sorry", { kind: "KEYWORD_MATCH_COUNT", keywords: ["sorry"] }, "COUNT"),
      { ...builtInMetric("an-lat", { kind: "CALL_DURATION" }), histogram: true },
      llmMetric("an-refund", "BOOLEAN", 'Did the customer ask for a "refund"?'),
    ]);
    const created = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds: Object.values(ids),
      metrics: metrics.map((m) => ({ id: m.id })),
    });
    const job = await waitForJobEnd(stack.api, created.body.data.id);
    expect(job).toMatchObject({ status: "COMPLETED", completedItems: 24 });
    // Rollups trail the values by the rollup applier's stream delay.
    await waitForRollups();
  });
  afterAll(() => stack?.stop());

  const range = "startDate=2026-03-08&endDate=2026-03-11";

  it("aggregates by type: sum for counters and booleans, average for gauges, p95 for histograms", async () => {
    const { status, body } = await get(`/v1/custom-metrics/aggregate?${range}`);
    expect(status).toBe(200);
    expect(body.data).toMatchObject({ "an-dur": 35_000, "an-sorry": 12, "an-refund": 6 });
    // p95 (nearest rank) of 10k…60k is 60k; the histogram answers within ±1 %.
    expect(Math.abs(body.data["an-lat"] - 60_000) / 60_000).toBeLessThanOrEqual(0.01);
    // A month reads the 10-day bucket [03-08, 03-18) plus days: the same answer.
    const month = await get("/v1/custom-metrics/aggregate?startDate=2026-03-01&endDate=2026-04-01");
    expect(month.body.data).toEqual(body.data);
  });

  it("filters by agent, environment and tags, and groups by two labels", async () => {
    const byTags = await get(
      `/v1/custom-metrics/aggregate?${range}&agentId=A&tags=${encodeURIComponent('{"region":"EU"}')}`,
    );
    expect(byTags.body.data["an-dur"]).toBe(40_000);
    const staging = await get(`/v1/custom-metrics/aggregate?${range}&environmentId=staging&metricNames=an-dur`);
    expect(staging.body.data).toEqual({ "an-dur": 30_000 });
    const grouped = await get(
      `/v1/custom-metrics/aggregate?${range}&metricNames=an-dur,an-sorry&groupBy=agentId,region`,
    );
    expect(grouped.body.data).toEqual([
      { agentId: "A", region: "EU", metrics: { "an-dur": 40_000, "an-sorry": 6 } },
      { agentId: "A", region: "US", metrics: { "an-dur": 20_000, "an-sorry": 2 } },
      { agentId: "B", region: "EU", metrics: { "an-dur": 35_000, "an-sorry": 4 } },
    ]);
    const narrow = await get(
      "/v1/custom-metrics/aggregate?startDate=2026-03-08T06:00:00Z&endDate=2026-03-08T07:00:00Z",
    );
    expect(narrow.body.data["an-dur"]).toBe(20_000);
  });

  it("names count, sum, average, p95 and pass rate per metric with stats=true, grouped and per day too", async () => {
    const { status, body } = await get(`/v1/custom-metrics/aggregate?${range}&stats=true`);
    expect(status).toBe(200);
    expect(body.data["an-dur"]).toEqual({ value: 35_000, aggregation: "avg", count: 6, sum: 210_000, average: 35_000 });
    expect(body.data["an-sorry"]).toEqual({ value: 12, aggregation: "sum", count: 6, sum: 12, average: 2 });
    expect(body.data["an-refund"]).toEqual({
      value: 6,
      aggregation: "sum",
      count: 6,
      sum: 6,
      average: 1,
      passRate: 1,
    });
    const latency = body.data["an-lat"];
    expect(latency).toMatchObject({ aggregation: "p95", count: 6, sum: 210_000, average: 35_000 });
    expect(latency.p95).toBe(latency.value);
    expect(Math.abs(latency.p95 - 60_000) / 60_000).toBeLessThanOrEqual(0.01);

    const grouped = await get(`/v1/custom-metrics/aggregate?${range}&stats=true&groupBy=region&metricNames=an-dur`);
    expect(grouped.body.data).toEqual([
      {
        region: "EU",
        metrics: { "an-dur": { value: 38_000, aggregation: "avg", count: 5, sum: 190_000, average: 38_000 } },
      },
      {
        region: "US",
        metrics: { "an-dur": { value: 20_000, aggregation: "avg", count: 1, sum: 20_000, average: 20_000 } },
      },
    ]);
    const days = await get(`/v1/custom-metrics/daily?${range}&stats=true&metricNames=an-sorry`);
    expect(days.body.data[0]).toEqual({
      date: "2026-03-08",
      metrics: { "an-sorry": { value: 6, aggregation: "sum", count: 3, sum: 6, average: 2 } },
    });
    // Without stats=true, VoiceRun's shape: one number per metric.
    expect((await get(`/v1/custom-metrics/aggregate?${range}&metricNames=an-sorry`)).body.data).toEqual({
      "an-sorry": 12,
    });
    expect((await get(`/v1/custom-metrics/aggregate?${range}&stats=yes`)).status).toBe(400);
  });

  it("counts a CLASSIFICATION metric's values per label with stats=true, and takes a deleted call's labels back out", async () => {
    const org = await stack.newOrganization("Call reasons");
    const said = (text: string) => [
      { role: "CUSTOMER" as const, text, startOffsetMs: 0, endOffsetMs: 2000 },
      { role: "AGENT" as const, text: "Let me help.", startOffsetMs: 2500, endOffsetMs: 4000 },
    ];
    const reasons = [
      { region: "EU", text: "A question about billing." },
      { region: "EU", text: "Billing, and a technical fault." },
      { region: "US", text: "I want a refund." },
      { region: "US", text: "The billing is wrong." },
    ];
    const callIds: string[] = [];
    for (const [index, { region, text }] of reasons.entries()) {
      const [id] = await createCalls(org.api, 1, {
        properties: { region },
        startedAt: `2026-03-08T0${index}:10:00Z`,
        endedAt: `2026-03-08T0${index}:11:00Z`,
        transcript: said(text),
      });
      callIds.push(id!);
    }
    const [reason] = await createMetrics(org.api, [
      llmMetric("an-reason", "CLASSIFICATION", "Why did the customer call?", {
        classificationOptions: ["billing", "refund", "technical"],
        maxClassifications: 2,
      }),
    ]);
    const created = await org.api("POST", "/v1/metric/collection-jobs", {
      callIds,
      metrics: [{ id: reason!.id }],
    });
    expect(await waitForJobEnd(org.api, created.body.data.id)).toMatchObject({ status: "COMPLETED" });
    await waitForRollups();
    const aggregate = async (query = "") =>
      (await org.api("GET", `/v1/custom-metrics/aggregate?${range}&stats=true${query}`)).body.data;
    expect(await aggregate()).toEqual({
      "an-reason": { value: 4, aggregation: "count", count: 4, labels: { billing: 3, technical: 1, refund: 1 } },
    });
    expect(await aggregate("&groupBy=region")).toEqual([
      { region: "EU", metrics: { "an-reason": expect.objectContaining({ labels: { billing: 2, technical: 1 } }) } },
      { region: "US", metrics: { "an-reason": expect.objectContaining({ labels: { billing: 1, refund: 1 } }) } },
    ]);
    // One hour (a 5-minute slot of its item) and one day read the same per-label counts.
    const hour = await org.api(
      "GET",
      "/v1/custom-metrics/aggregate?startDate=2026-03-08T01:00:00Z&endDate=2026-03-08T02:00:00Z&stats=true",
    );
    expect(hour.body.data["an-reason"].labels).toEqual({ billing: 1, technical: 1 });
    const days = await org.api("GET", `/v1/custom-metrics/daily?${range}&stats=true`);
    expect(days.body.data[0].metrics["an-reason"].labels).toEqual({ billing: 3, technical: 1, refund: 1 });

    expect((await org.api("DELETE", `/v1/call/${callIds[1]}`)).status).toBe(200);
    await waitForRollups();
    expect(await aggregate()).toEqual({
      "an-reason": { value: 3, aggregation: "count", count: 3, labels: { billing: 2, refund: 1 } },
    });
  });

  it("labels days in the timezone: a DST day in New York and a +05:30 zone", async () => {
    const newYork = await get(
      "/v1/custom-metrics/daily?startDate=2026-03-08&endDate=2026-03-10&metricNames=an-dur&timezone=America/New_York",
    );
    // 2026-03-08 is 23 hours long there: [05:00Z, 04:00Z next day).
    expect(newYork.body.data).toEqual([
      { date: "2026-03-08", metrics: { "an-dur": 25_000 } },
      { date: "2026-03-09", metrics: { "an-dur": 45_000 } },
    ]);
    const byAgent = await get(
      "/v1/custom-metrics/daily?startDate=2026-03-08&endDate=2026-03-10&metricNames=an-dur&timezone=America/New_York&groupBy=agentId",
    );
    expect(byAgent.body.data).toEqual([
      { date: "2026-03-08", agentId: "A", metrics: { "an-dur": 20_000 } },
      { date: "2026-03-08", agentId: "B", metrics: { "an-dur": 30_000 } },
      { date: "2026-03-09", agentId: "A", metrics: { "an-dur": 50_000 } },
      { date: "2026-03-09", agentId: "B", metrics: { "an-dur": 40_000 } },
    ]);
    const kolkata = await get(
      "/v1/custom-metrics/daily?startDate=2026-03-08&endDate=2026-03-10&metricNames=an-dur&timezone=Asia/Kolkata",
    );
    expect(kolkata.body.data).toEqual([
      { date: "2026-03-08", metrics: { "an-dur": 15_000 } },
      { date: "2026-03-09", metrics: { "an-dur": 35_000 } },
    ]);
  });

  it("answers timeseries as a Prometheus matrix, one series per label set", async () => {
    const daily = await get(`/v1/custom-metrics/timeseries?metricName=an-dur&${range}&step=1d`);
    expect(daily.body.data.resultType).toBe("matrix");
    const series = daily.body.data.result.find((s: any) => s.metric.agentId === "A" && s.metric.region === "EU");
    expect(series).toEqual({
      metric: { metric_name: "an-dur", agentId: "A", environmentId: "prod", region: "EU" },
      values: [
        [Date.parse("2026-03-08T00:00:00Z") / 1000, "10000"],
        [Date.parse("2026-03-09T00:00:00Z") / 1000, "50000"],
        [Date.parse("2026-03-10T00:00:00Z") / 1000, "60000"],
      ],
    });
    const hourly = await get(
      `/v1/custom-metrics/timeseries?metricName=an-dur&${range}&step=1h&tags=${encodeURIComponent('{"region":"US"}')}`,
    );
    expect(hourly.body.data.result).toEqual([
      {
        metric: { metric_name: "an-dur", agentId: "A", environmentId: "prod", region: "US" },
        values: [[Date.parse("2026-03-08T06:00:00Z") / 1000, "20000"]],
      },
    ]);
    // Steps start at startDate: days in Kolkata begin at 18:30 UTC.
    const kolkata = await get(
      `/v1/custom-metrics/timeseries?metricName=an-dur&${range}&step=1d&timezone=Asia/Kolkata&agentId=A&tags=${encodeURIComponent('{"region":"EU"}')}`,
    );
    expect(kolkata.body.data.result).toEqual([
      {
        metric: { metric_name: "an-dur", agentId: "A", environmentId: "prod", region: "EU" },
        values: [
          [Date.parse("2026-03-07T18:30:00Z") / 1000, "10000"],
          [Date.parse("2026-03-09T18:30:00Z") / 1000, "55000"],
        ],
      },
    ]);
    const fine = await get(
      "/v1/custom-metrics/timeseries?metricName=an-sorry&startDate=2026-03-08T06:00:00Z&endDate=2026-03-08T07:00:00Z&step=5m",
    );
    expect(fine.body.data.result).toEqual([
      {
        metric: { metric_name: "an-sorry", agentId: "A", environmentId: "prod", region: "US" },
        values: [[Date.parse("2026-03-08T06:30:00Z") / 1000, "2"]],
      },
    ]);
    // A histogram metric's hours come from hour items of their own: p95 of one hour, one value.
    const latency = await get(
      `/v1/custom-metrics/timeseries?metricName=an-lat&${range}&step=1h&tags=${encodeURIComponent('{"region":"US"}')}`,
    );
    const [[at, p95]] = latency.body.data.result[0].values;
    expect(at).toBe(Date.parse("2026-03-08T06:00:00Z") / 1000);
    expect(Math.abs(Number(p95) - 20_000) / 20_000).toBeLessThanOrEqual(0.01);
    const counter = await get(`/v1/custom-metrics/timeseries?metricName=an-refund&${range}&step=1d&agentId=B`);
    expect(counter.body.data.result.flatMap((s: any) => s.values.map((v: any) => v[1]))).toEqual(["1", "1"]);
  });

  it("lists metric names, tag values (without system labels) and a call's values", async () => {
    expect((await get("/v1/custom-metrics/names")).body.data).toEqual(["an-dur", "an-lat", "an-refund", "an-sorry"]);
    expect((await get("/v1/custom-metrics/names?agentId=nobody")).body.data).toEqual([]);
    expect((await get("/v1/custom-metrics/tags?metricName=an-dur")).body.data).toEqual({ region: ["EU", "US"] });
    // Without a metric name: every metric's labels, as VoiceRun answers.
    const everyMetric = await get("/v1/custom-metrics/tags");
    expect(everyMetric.status).toBe(200);
    expect(everyMetric.body.data).toEqual({ region: ["EU", "US"] });
    expect((await get("/v1/custom-metrics/tags?agentId=nobody")).body.data).toEqual({});
    const session = await get(`/v1/custom-metrics/sessions/${ids.c2}`);
    expect(session.body.data.resultType).toBe("vector");
    const dur = session.body.data.result.find((r: any) => r.metric.metric_name === "an-dur");
    expect(dur).toEqual({
      metric: { metric_name: "an-dur", agentId: "A", environmentId: "prod", region: "US" },
      value: [Date.parse("2026-03-08T06:30:00Z") / 1000, "20000"],
    });
    expect(session.body.data.result.find((r: any) => r.metric.metric_name === "an-refund").value[1]).toBe("1");
    // The session id the client gave the call (its externalId) finds the same values.
    expect((await get("/v1/custom-metrics/sessions/session-c2")).body).toEqual(session.body);
    expect((await get("/v1/custom-metrics/sessions/session-unknown")).status).toBe(404);
  });

  it("counted every value once although every batch was delivered twice", async () => {
    // Counted inside the handlers, once every twin has run.
    const summaries = await deliveries.everyTwinDelivered();
    // 24 items in batches of at most 20: two batches at least, the second one's twin concurrent.
    const evaluator = summaries.find((s) => s.id === "evaluator");
    expect(evaluator?.batches).toBeGreaterThanOrEqual(2);
    expect(evaluator?.overlapped).toBeGreaterThanOrEqual(1);
    // Per metric, as many values as calls: 6 calls, 2 keywords each.
    const { body } = await get(`/v1/custom-metrics/aggregate?${range}&metricNames=an-sorry,an-refund`);
    expect(body.data).toEqual({ "an-sorry": 12, "an-refund": 6 });
  });

  it("keeps organizations apart", async () => {
    const other = await stack.newOrganization("Other");
    expect((await other.api("GET", `/v1/custom-metrics/aggregate?${range}`)).body.data).toEqual({});
    expect((await other.api("GET", "/v1/custom-metrics/names")).body.data).toEqual([]);
    expect((await other.api("GET", "/v1/custom-metrics/tags?metricName=an-dur")).body.data).toEqual({});
    const series = await other.api("GET", `/v1/custom-metrics/timeseries?metricName=an-dur&${range}`);
    expect(series.body.data.result).toEqual([]);
    expect((await other.api("GET", `/v1/custom-metrics/sessions/${ids.c1}`)).status).toBe(404);
  });

  it("answers 400 with a clear message for bad input", async () => {
    const cases: [string, RegExp][] = [
      ["/v1/custom-metrics/aggregate?startDate=yesterday&endDate=2026-03-11", /startDate: "yesterday" is not a date/],
      ["/v1/custom-metrics/aggregate?startDate=2026-02-30&endDate=2026-03-11", /not a valid date/],
      [`/v1/custom-metrics/aggregate?${range}&timezone=Mars/Olympus`, /Unknown timezone "Mars\/Olympus"/],
      [
        "/v1/custom-metrics/aggregate?startDate=2026-03-08T00:00:00Z&endDate=2026-03-09T00:00:00Z&timezone=Nowhere",
        /Unknown timezone "Nowhere"/,
      ],
      [`/v1/custom-metrics/aggregate?${range}&tags=${encodeURIComponent("{region:EU}")}`, /tags must be a JSON object/],
      ["/v1/custom-metrics/aggregate?startDate=2026-03-11&endDate=2026-03-08", /startDate must be before endDate/],
      ["/v1/custom-metrics/timeseries?metricName=an-dur&startDate=2025-03-01&endDate=2026-03-01&step=5m", /too fine/],
      [`/v1/custom-metrics/timeseries?metricName=an-dur&${range}&step=7m`, /multiple of 5m/],
      ["/v1/custom-metrics/aggregate?endDate=2026-03-11", /startDate/],
      [`/v1/custom-metrics/aggregate?${range}&tags=${encodeURIComponent('["EU"]')}`, /tags must be a JSON object/],
      [`/v1/custom-metrics/aggregate?${range}&tags=${encodeURIComponent('{"n":1}')}`, /string labels/],
      ["/v1/custom-metrics/aggregate?startDate=2024-01-01&endDate=2026-03-11", /at most 400 days/],
      ["/v1/custom-metrics/daily?startDate=2026-03-08&endDate=03/11/2026", /endDate: "03\/11\/2026" is not a date/],
      [`/v1/custom-metrics/daily?${range}&timezone=EST5EDT_nope`, /Unknown timezone/],
      [`/v1/custom-metrics/timeseries?metricName=an-dur&${range}&step=30s`, /multiple of 5m/],
      [`/v1/custom-metrics/timeseries?metricName=an-dur&${range}&step=2d`, /multiple of 5m between 5m and 1d/],
      [`/v1/custom-metrics/timeseries?${range}`, /metricName/],
    ];
    for (const [path, message] of cases) {
      const response = await get(path);
      expect(response.status, path).toBe(400);
      expect(response.body.error.message, path).toMatch(message);
      expect(response.body.error.details?.[0]?.field, path).toMatch(/^query\./);
    }
  });

  it("still counts a metric's earlier values in hours after it starts keeping a histogram", async () => {
    // Values without a histogram write no hour items; once the metric keeps one, its hours
    // must still be summed from 5-minute slots, or the earlier values would be missed.
    const [metric] = await createMetrics(stack.api, [
      builtInMetric("an-flip", { kind: "KEYWORD_MATCH_COUNT", keywords: ["sorry"] }, "COUNT"),
    ]);
    const runJob = async () => {
      const created = await stack.api("POST", "/v1/metric/collection-jobs", {
        callIds: [ids.c2],
        metrics: [{ id: metric!.id }],
      });
      expect(await waitForJobEnd(stack.api, created.body.data.id)).toMatchObject({ status: "COMPLETED" });
    };
    await runJob();
    expect((await stack.api("PUT", `/v1/metric/definitions/${metric!.id}`, { histogram: true })).status).toBe(200);
    await runJob();
    await waitForRollups();
    // One hour, read at hour resolution: the call's 2 "sorry"s, counted by both versions.
    const hour = await get(
      "/v1/custom-metrics/aggregate?startDate=2026-03-08T06:00:00Z&endDate=2026-03-08T07:00:00Z&metricNames=an-flip",
    );
    expect(hour.body.data).toEqual({ "an-flip": 4 });
  });
});
