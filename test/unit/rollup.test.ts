import { describe, expect, it } from "vitest";
import { deltaItem, mergedDeltaItems, toDelta } from "../../shared/analytics/deltas.ts";
import { aggregationFor, decompose, plan } from "../../shared/analytics/query.ts";
import {
  boundedLabelValue,
  bucketsOf,
  classLabels,
  histogramBucket,
  numericValue,
  quantile,
  type RollupInput,
  rollupIncrements,
  rollupItem,
  rollupUpdate,
  storedTier,
} from "../../shared/analytics/rollup.ts";
import { localDays, zonedMidnight } from "../../shared/analytics/time.ts";

const H = 3_600_000;
const D = 24 * H;

describe("analytics rollups", () => {
  it("maps values to numbers by output type", () => {
    expect(numericValue(true, "BOOLEAN")).toBe(1);
    expect(numericValue(false, "BOOLEAN")).toBe(0);
    expect(numericValue(4, "SCALE")).toBe(4);
    expect(numericValue(["a"], "CLASSIFICATION")).toBeUndefined();
    expect(numericValue("text", "TEXT")).toBeUndefined();
    expect(aggregationFor("COUNT", false)).toBe("sum");
    expect(aggregationFor("NUMERIC", false)).toBe("avg");
    expect(aggregationFor("NUMERIC", true)).toBe("p95");
    expect(aggregationFor("TEXT", false)).toBe("count");
  });

  it("counts each label of a CLASSIFICATION value in its slot, labels holding '@' included, through a delta", () => {
    const long = "x".repeat(200);
    expect(classLabels(["billing", "billing", long], "CLASSIFICATION")).toEqual(["billing", boundedLabelValue(long)]);
    expect(classLabels("refund", "CLASSIFICATION")).toEqual(["refund"]);
    expect(classLabels(true, "BOOLEAN")).toBeUndefined();
    const input = {
      orgId: "o",
      slug: "reason",
      histogram: false,
      labels: { agentId: "a" },
      at: "2026-03-08T06:35:00Z",
      classes: ["billing", "me@work"],
    };
    // Through a stored delta, as the rollup applier reads it.
    const [stored] = toDelta(deltaItem("o", ["k"], [input])).inputs;
    const increments = rollupIncrements([{ ...stored!, orgId: "o" }]);
    const fiveMinutes = increments.find((i) => i.key.pk.endsWith("#5m"))!;
    expect(bucketsOf(rollupItem(fiveMinutes), "5m")).toEqual([
      { at: Date.parse("2026-03-08T06:35:00Z"), fields: { count: 1, "c:billing": 1, "c:me@work": 1 } },
    ]);
    const day = increments.find((i) => i.key.pk.endsWith("#1d"))!;
    expect(bucketsOf(rollupItem(day), "1d")[0]?.fields).toEqual({ count: 1, "c:billing": 1, "c:me@work": 1 });
  });

  it("estimates quantiles from the log histogram within ±1 %", () => {
    const values = Array.from({ length: 1000 }, (_, i) => (i + 1) * 37.5);
    const histogram = new Map<string, number>();
    for (const value of values) histogram.set(histogramBucket(value), (histogram.get(histogramBucket(value)) ?? 0) + 1);
    for (const q of [0.5, 0.9, 0.95, 0.99]) {
      const exact = values[Math.ceil(q * values.length) - 1]!;
      expect(Math.abs(quantile(histogram, q)! - exact) / exact).toBeLessThanOrEqual(0.01);
    }
    expect(quantile(new Map([["hz", 3]]), 0.95)).toBe(0);
    expect(quantile(new Map(), 0.5)).toBeUndefined();
  });

  it("writes each value to four resolutions and merges increments of one item", () => {
    const input = { orgId: "o", slug: "m", outputType: "NUMERIC" as const, histogram: true, labels: { agentId: "a" } };
    const increments = rollupIncrements([
      { ...input, at: "2026-03-08T04:01:00Z", numeric: 2 },
      { ...input, at: "2026-03-08T04:03:00Z", numeric: 3 },
      { ...input, at: "2026-03-08T04:55:00Z", numeric: 3 },
    ]);
    // One item per tier: the 5-minute buckets of an hour share one item, slotted by attribute name.
    expect(increments.map((i) => [i.key.pk.split("#").at(-1), i.key.sk])).toEqual([
      ["5m", "2026-03-08T04:00:00.000Z"],
      ["1h", "2026-03-08T04:00:00.000Z"],
      ["1d", "2026-03-08T00:00:00.000Z"],
      ["10d", "2026-03-08T00:00:00.000Z"],
    ]);
    const [block, hour] = increments.map((i) => Object.fromEntries(i.adds));
    const [h2, h3] = [histogramBucket(2), histogramBucket(3)];
    expect(block).toEqual({
      "count@00": 2,
      "sum@00": 5,
      [`${h2}@00`]: 1,
      [`${h3}@00`]: 1,
      "count@11": 1,
      "sum@11": 3,
      [`${h3}@11`]: 1,
    });
    expect(hour).toEqual({ count: 3, sum: 8, [h2]: 1, [h3]: 2 });
    // A sequence of ADD updates leaves exactly these buckets.
    expect(bucketsOf(rollupItem(increments[0]!), "5m")).toEqual([
      { at: Date.parse("2026-03-08T04:00:00Z"), fields: { count: 2, sum: 5, [h2]: 1, [h3]: 1 } },
      { at: Date.parse("2026-03-08T04:55:00Z"), fields: { count: 1, sum: 3, [h3]: 1 } },
    ]);
    expect(bucketsOf(rollupItem(increments[3]!), "10d")).toEqual([
      { at: Date.parse("2026-03-08T00:00:00Z"), fields: { count: 3, sum: 8, [h2]: 1, [h3]: 2 } },
    ]);
    // Gauges and counters without the histogram flag carry no histogram, and write no hour
    // item: their hours are summed from the 5-minute slots.
    const plain = rollupIncrements([
      { ...input, histogram: false, at: "2026-03-08T04:01:00Z", numeric: 2 },
      { ...input, histogram: false, at: "2026-03-08T04:55:00Z", numeric: 3 },
    ]);
    expect(plain.map((i) => i.key.pk.split("#").at(-1))).toEqual(["5m", "1d", "10d"]);
    expect(Object.fromEntries(plain[1]!.adds)).toEqual({ count: 2, sum: 5 });
    const update = rollupUpdate(plain[1]!);
    expect(update.UpdateExpression).toBe("ADD #a0 :a0, #a1 :a1");
    expect(storedTier("1h", false)).toBe("5m");
    expect(storedTier("1h", true)).toBe("1h");
    expect(storedTier("1d", false)).toBe("1d");
    const slots = bucketsOf(rollupItem(plain[0]!), storedTier("1h", false));
    expect(slots.reduce((sum, { fields }) => sum + (fields.sum ?? 0), 0)).toBe(5);
  });

  it("decomposes a range into whole days, hours and 5-minute buckets", () => {
    const from = Date.parse("2026-03-07T18:30:00Z");
    const to = Date.parse("2026-03-10T05:15:00Z");
    const segments = decompose(from, to);
    expect(segments).toEqual([
      { tier: "1d", from: Date.parse("2026-03-08T00:00:00Z"), to: Date.parse("2026-03-10T00:00:00Z") },
      { tier: "1h", from: Date.parse("2026-03-07T19:00:00Z"), to: Date.parse("2026-03-08T00:00:00Z") },
      { tier: "5m", from, to: Date.parse("2026-03-07T19:00:00Z") },
      { tier: "1h", from: Date.parse("2026-03-10T00:00:00Z"), to: Date.parse("2026-03-10T05:00:00Z") },
      { tier: "5m", from: Date.parse("2026-03-10T05:00:00Z"), to },
    ]);
    expect(segments.reduce((sum, s) => sum + (s.to - s.from), 0)).toBe(to - from);
    expect(decompose(0, 2 * D)).toEqual([{ tier: "1d", from: 0, to: 2 * D }]);
    // 90 days between two 10-day buckets: 8 of those and 5 whole days on each side.
    const start = Date.parse("2026-08-30T00:00:00Z");
    expect(decompose(start, start + 90 * D)).toEqual([
      { tier: "10d", from: Date.parse("2026-09-04T00:00:00Z"), to: Date.parse("2026-11-23T00:00:00Z") },
      { tier: "1d", from: start, to: Date.parse("2026-09-04T00:00:00Z") },
      { tier: "1d", from: Date.parse("2026-11-23T00:00:00Z"), to: start + 90 * D },
    ]);
  });

  it("reads a local day as a UTC day plus and minus its offset when that is cheaper", () => {
    // New York, 2026-03-09 (EDT): [04:00Z, 04:00Z next day) = day 03-09 − 4 hours + 4 hours.
    const newYork = plan(Date.parse("2026-03-09T04:00:00Z"), Date.parse("2026-03-10T04:00:00Z"));
    expect(newYork).toEqual([
      { tier: "1d", from: Date.parse("2026-03-09T00:00:00Z"), to: Date.parse("2026-03-10T00:00:00Z"), sign: 1 },
      { tier: "1h", from: Date.parse("2026-03-10T00:00:00Z"), to: Date.parse("2026-03-10T04:00:00Z"), sign: 1 },
      { tier: "1h", from: Date.parse("2026-03-09T00:00:00Z"), to: Date.parse("2026-03-09T04:00:00Z"), sign: -1 },
    ]);
    // Kolkata, 2026-03-09: [03-08 18:30Z, 03-09 18:30Z) = day 03-09 + 5½ hours − 5½ hours.
    const kolkata = plan(Date.parse("2026-03-08T18:30:00Z"), Date.parse("2026-03-09T18:30:00Z"));
    const net = (at: string) =>
      kolkata.filter((s) => s.from <= Date.parse(at) && Date.parse(at) < s.to).reduce((n, s) => n + s.sign, 0);
    expect(kolkata.length).toBeLessThan(
      decompose(Date.parse("2026-03-08T18:30:00Z"), Date.parse("2026-03-09T18:30:00Z")).length + 3,
    );
    for (const [at, inside] of [
      ["2026-03-08T18:25:00Z", 0],
      ["2026-03-08T18:30:00Z", 1],
      ["2026-03-09T12:00:00Z", 1],
      ["2026-03-09T18:25:00Z", 1],
      ["2026-03-09T18:30:00Z", 0],
      ["2026-03-09T23:55:00Z", 0],
    ] as const) {
      expect(net(at), at).toBe(inside);
    }
  });

  it("finds local midnights and day lengths across DST and half-hour zones", () => {
    expect(new Date(zonedMidnight(2026, 3, 8, "America/New_York")).toISOString()).toBe("2026-03-08T05:00:00.000Z");
    expect(new Date(zonedMidnight(2026, 3, 9, "America/New_York")).toISOString()).toBe("2026-03-09T04:00:00.000Z");
    expect(new Date(zonedMidnight(2026, 3, 8, "Asia/Kolkata")).toISOString()).toBe("2026-03-07T18:30:00.000Z");
    expect(new Date(zonedMidnight(2026, 3, 8, "Asia/Kathmandu")).toISOString()).toBe("2026-03-07T18:15:00.000Z");
    const days = localDays(
      zonedMidnight(2026, 3, 7, "America/New_York"),
      zonedMidnight(2026, 3, 10, "America/New_York"),
      "America/New_York",
    );
    expect(days.map((d) => [d.date, (d.to - d.from) / H])).toEqual([
      ["2026-03-07", 24],
      ["2026-03-08", 23],
      ["2026-03-09", 24],
    ]);
  });
});

describe("rollup delta items", () => {
  const orgId = "9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f";
  const inputs: RollupInput[] = [0, 1].flatMap((call) =>
    ["refund-asked", "empathy", "call-reason", "verified-identity", "refund-quote"].map((slug, metric) => ({
      orgId,
      slug,
      outputType: metric === 2 || metric === 4 ? ("TEXT" as const) : ("NUMERIC" as const),
      histogram: metric === 1,
      labels: { agentId: `agent-${call}`, environmentId: "production", region: "EU" },
      at: new Date(Date.UTC(2026, 10, 1, 9, call)).toISOString(),
      ...(metric === 2 || metric === 4 ? {} : { numeric: metric + call / 10 }),
    })),
  );
  const valueKeys = inputs.map((input, n) => `${orgId}|job|call-${n}|${input.slug}`);

  it("stores ten values of two calls in under 1 KB and reads them back", () => {
    const item = deltaItem(orgId, valueKeys, inputs);
    // JSON is longer than DynamoDB's size of the same item, so this bounds it.
    expect(JSON.stringify(item).length).toBeLessThan(1024);
    const { orgId: readOrg, inputs: read } = toDelta(item);
    expect(readOrg).toBe(orgId);
    expect(rollupIncrements(read.map((input) => ({ ...input, orgId })))).toEqual(rollupIncrements(inputs));
  });

  it("stores a merged delta's increments without the organization's key prefix and reads them back", () => {
    // 30 calls an hour apart: hundreds of rollup items, in merged deltas of at most 99 each.
    const manyCalls = Array.from({ length: 30 }, (_, call) =>
      inputs.map((input) => ({ ...input, at: new Date(Date.UTC(2026, 10, 1, call)).toISOString() })),
    );
    const sources = manyCalls.map((callInputs, call) =>
      toDelta(
        deltaItem(
          orgId,
          valueKeys.map((key) => `${key}|${call}`),
          callInputs,
        ),
      ),
    );
    const merged = mergedDeltaItems(orgId, sources);
    const expected = rollupIncrements(manyCalls.flat());
    expect(merged.length).toBe(Math.ceil(expected.length / 99));
    const read = merged.flatMap((item) => toDelta(item).increments ?? []);
    const byKey = (list: typeof expected) =>
      list.map(({ key, adds }) => [key.pk, key.sk, Object.fromEntries(adds)]).sort();
    expect(byKey(read)).toEqual(byKey(expected));
    // Whole keys repeat the organization in every increment: the compact form is half the size.
    for (const item of merged) {
      expect(JSON.stringify(item)).not.toContain(`ORG#${orgId}#ROLLUP#`);
      expect(JSON.stringify(item).length).toBeLessThan(JSON.stringify(withWholeKeys(item)).length * 0.6);
    }
  });

  /** A merged delta as stored before the compact form. */
  const withWholeKeys = (item: ReturnType<typeof mergedDeltaItems>[number]) => {
    const { rollups: _rollups, ...rest } = item;
    const increments = toDelta(item).increments ?? [];
    return { ...rest, increments: increments.map(({ key, adds }) => ({ ...key, adds: Object.fromEntries(adds) })) };
  };

  it("reads merged deltas stored with whole rollup keys", () => {
    const [merged] = mergedDeltaItems(orgId, [toDelta(deltaItem(orgId, valueKeys, inputs))]);
    if (!merged) throw new Error("no merged delta");
    expect(merged.rollups.length).toBe(rollupIncrements(inputs).length);
    expect(toDelta(withWholeKeys(merged)).increments).toEqual(toDelta(merged).increments);
  });

  it("reads deltas stored before values were grouped by call", () => {
    const { calls: _calls, ...rest } = deltaItem(orgId, valueKeys, inputs);
    const older = { ...rest, inputs: inputs.map(({ orgId: _org, ...input }) => input) };
    expect(rollupIncrements(toDelta(older).inputs.map((input) => ({ ...input, orgId })))).toEqual(
      rollupIncrements(inputs),
    );
  });
});
