/**
 * EventBridge Scheduler, locally: invokes each schedule's function when its expression says
 * — `rate(…)` every period from the start, `cron(…)` at its UTC times (parsed as backfill
 * schedules are) — with the event Scheduler's Lambda target sends. `intervalMs` replaces
 * every period (tests need not wait a minute), and `trigger` runs one now (tests, by hand).
 * A run never overlaps the previous one, like a function at reserved concurrency 1.
 */
import { nextRun, parseSchedule } from "../../shared/backfills/schedule.ts";
import type { ScheduleEntry } from "../../shared/wiring.ts";
import { errorDetails, type RuntimeLogger } from "./invoke.ts";

/** setTimeout's longest wait; a later run is reached by waking up and waiting again. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface LocalScheduler {
  /** Runs the schedule's function now (after its current run, if one is going) and answers its result. */
  trigger(scheduleId: string): Promise<unknown>;
  stop(): void;
}

export function startScheduler(options: {
  schedules: ScheduleEntry[];
  invoke: (entry: ScheduleEntry, event: unknown) => Promise<unknown>;
  /** Overrides every schedule's timing with this period (tests). */
  intervalMs?: number;
  logger: RuntimeLogger;
}): LocalScheduler {
  const startedAt = new Date();
  const timers = new Map<string, NodeJS.Timeout>();
  const running = new Map<string, Promise<unknown>>();
  let stopped = false;

  function run(entry: ScheduleEntry): Promise<unknown> {
    const event = { "detail-type": "Scheduled Event", source: "aws.scheduler", time: new Date().toISOString() };
    const result = options.invoke(entry, event).finally(() => running.delete(entry.id));
    running.set(entry.id, result);
    return result;
  }

  function arm(entry: ScheduleEntry, at: Date) {
    const wait = Math.min(MAX_TIMER_MS, Math.max(0, at.getTime() - Date.now()));
    timers.set(
      entry.id,
      setTimeout(() => {
        if (stopped) return;
        if (Date.now() < at.getTime()) return arm(entry, at);
        // A run still in progress is not overlapped: this tick is skipped.
        if (!running.has(entry.id)) {
          run(entry).catch((error) => options.logger.error(`${entry.id}: scheduled run failed`, errorDetails(error)));
        }
        arm(entry, nextTime(entry, new Date()));
      }, wait),
    );
  }

  function nextTime(entry: ScheduleEntry, after: Date): Date {
    if (options.intervalMs !== undefined) return new Date(after.getTime() + options.intervalMs);
    const next = nextRun(parseSchedule(entry.expression), after, startedAt);
    if (!next) throw new Error(`Schedule ${entry.id} (${entry.expression}) never runs`);
    return next;
  }

  for (const entry of options.schedules) arm(entry, nextTime(entry, startedAt));

  return {
    async trigger(scheduleId) {
      const entry = options.schedules.find((schedule) => schedule.id === scheduleId);
      if (!entry) throw new Error(`No schedule "${scheduleId}" in the wiring`);
      for (let current = running.get(scheduleId); current; current = running.get(scheduleId)) {
        await current.catch(() => {});
      }
      return run(entry);
    },
    stop() {
      stopped = true;
      for (const timer of timers.values()) clearTimeout(timer);
    },
  };
}
