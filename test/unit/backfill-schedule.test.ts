import { describe, expect, it } from "vitest";
import { nextRun, parseSchedule } from "../../shared/backfills/schedule.ts";
import { parseLookback } from "../../shared/schemas/backfill.ts";

const at = (iso: string) => new Date(iso);
const next = (expression: string, after: string) => nextRun(parseSchedule(expression), at(after))?.toISOString();

describe("backfill schedules", () => {
  it("computes the next run of rate expressions", () => {
    expect(next("rate(1 minute)", "2026-11-24T10:00:30Z")).toBe("2026-11-24T10:01:30.000Z");
    expect(next("rate(6 hours)", "2026-11-24T10:00:00Z")).toBe("2026-11-24T16:00:00.000Z");
    expect(next("rate(1 day)", "2026-11-24T10:00:00Z")).toBe("2026-11-25T10:00:00.000Z");
  });

  it("computes the next run of cron expressions in UTC", () => {
    expect(next("cron(0 2 * * ? *)", "2026-11-24T10:00:00Z")).toBe("2026-11-25T02:00:00.000Z");
    expect(next("cron(0 2 * * ? *)", "2026-11-24T01:59:00Z")).toBe("2026-11-24T02:00:00.000Z");
    expect(next("cron(*/15 * * * ? *)", "2026-11-24T10:07:00Z")).toBe("2026-11-24T10:15:00.000Z");
    // Mondays at 09:30 (EventBridge numbers days SUN=1 … SAT=7).
    expect(next("cron(30 9 ? * MON *)", "2026-11-24T10:00:00Z")).toBe("2026-11-30T09:30:00.000Z");
    expect(next("cron(30 9 ? * 2 *)", "2026-11-24T10:00:00Z")).toBe("2026-11-30T09:30:00.000Z");
    expect(next("cron(0 0 1 JAN ? *)", "2026-11-24T10:00:00Z")).toBe("2027-01-01T00:00:00.000Z");
    expect(next("cron(0 12 29 2 ? *)", "2026-03-01T00:00:00Z")).toBe("2028-02-29T12:00:00.000Z");
    expect(next("cron(0 0 1 1 ? 2020)", "2026-01-01T00:00:00Z")).toBeUndefined();
  });

  it("rejects malformed expressions with a reason", () => {
    expect(() => parseSchedule("every day")).toThrow(/rate\(N/);
    expect(() => parseSchedule("cron(0 2 * * *)")).toThrow(/6 fields/);
    expect(() => parseSchedule("cron(0 2 * * * *)")).toThrow(/\? in exactly one/);
    expect(() => parseSchedule("cron(61 2 * * ? *)")).toThrow(/out of range/);
    expect(() => parseSchedule("rate(0 minutes)")).toThrow(/at least 1/);
    expect(() => parseSchedule("rate(1 hours)")).toThrow(/use "1 hour"/);
    expect(() => parseSchedule("rate(5 minute)")).toThrow(/use "5 minutes"/);
    expect(() => parseSchedule("rate(-1 days)")).toThrow(/rate\(N/);
    expect(() => parseSchedule("cron(0 25 * * ? *)")).toThrow(/out of range/);
    expect(() => parseSchedule("cron(0/0 * * * ? *)")).toThrow(/bad step/);
    expect(() => parseSchedule("cron(0 2 ? * MON-FRI *)")).not.toThrow();
  });

  it("parses ISO-8601 lookbacks", () => {
    expect(parseLookback("P1D")).toBe(86_400_000);
    expect(parseLookback("PT6H")).toBe(6 * 3_600_000);
    expect(parseLookback("P7DT12H30M")).toBe(((7 * 24 + 12) * 60 + 30) * 60_000);
    expect(parseLookback("P")).toBeUndefined();
    expect(parseLookback("1 day")).toBeUndefined();
  });
});
