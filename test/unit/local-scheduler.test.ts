/** The local scheduler keeps EventBridge Scheduler's times: rate from the start, cron at its UTC minutes. */
import { afterEach, describe, expect, it, vi } from "vitest";
import { startScheduler } from "../../infra/local/scheduler.ts";
import type { ScheduleEntry } from "../../shared/wiring.ts";

const schedule = (id: string, expression: string): ScheduleEntry => ({
  id,
  entry: `functions/workers/${id}.ts`,
  access: {},
  expression,
});
const quiet = { info: () => {}, error: () => {} };

afterEach(() => vi.useRealTimers());

describe("the local scheduler", () => {
  it("fires cron schedules at their UTC times and rate schedules a period after the start", async () => {
    vi.useFakeTimers({ now: new Date("2026-12-07T10:07:30Z") });
    const runs: string[] = [];
    const scheduler = startScheduler({
      schedules: [schedule("quarterly", "cron(0/15 * * * ? *)"), schedule("every-five", "rate(5 minutes)")],
      invoke: async (entry, event) => {
        runs.push(`${entry.id} ${(event as { time: string }).time.slice(11, 19)}`);
      },
      logger: quiet,
    });
    await vi.advanceTimersByTimeAsync(24 * 60_000);
    scheduler.stop();
    expect(runs).toEqual([
      "every-five 10:12:30",
      "quarterly 10:15:00",
      "every-five 10:17:30",
      "every-five 10:22:30",
      "every-five 10:27:30",
      "quarterly 10:30:00",
    ]);
  });

  it("never overlaps a run, and runs one by hand after the run in progress", async () => {
    vi.useFakeTimers({ now: new Date("2026-12-07T10:00:00Z") });
    let inFlight = 0;
    let most = 0;
    let runs = 0;
    const scheduler = startScheduler({
      schedules: [schedule("slow", "rate(1 minute)")],
      invoke: async () => {
        inFlight++;
        most = Math.max(most, inFlight);
        runs++;
        // Each run takes two and a half minutes: two ticks fall inside it and are skipped.
        await new Promise((resolve) => setTimeout(resolve, 150_000));
        inFlight--;
        return runs;
      },
      logger: quiet,
    });
    await vi.advanceTimersByTimeAsync(61_000);
    expect(runs).toBe(1);
    const byHand = scheduler.trigger("slow");
    await vi.advanceTimersByTimeAsync(300_000);
    expect(await byHand).toBe(2);
    expect(most).toBe(1);
    await expect(scheduler.trigger("nope")).rejects.toThrow('No schedule "nope" in the wiring');
    scheduler.stop();
  });
});
