/**
 * EventBridge Scheduler, locally: invokes each schedule's function on a timer with the
 * event Scheduler's Lambda target sends. `rate(…)` expressions run at their rate (or at
 * `intervalMs` when given, so tests need not wait a minute); `cron(…)` runs once a minute.
 */
import type { ScheduleEntry } from "../../shared/wiring.ts";
import { errorDetails, type RuntimeLogger } from "./invoke.ts";

const UNIT_MS: Record<string, number> = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };

function scheduleIntervalMs(expression: string): number {
  const rate = /^rate\((\d+) (minute|hour|day)s?\)$/.exec(expression);
  if (rate) return Number(rate[1]) * (UNIT_MS[rate[2] ?? "minute"] ?? 60_000);
  if (/^cron\(.+\)$/.test(expression)) return 60_000;
  throw new Error(`Unsupported schedule expression: ${expression}`);
}

export function startScheduler(options: {
  schedules: ScheduleEntry[];
  invoke: (entry: ScheduleEntry, event: unknown) => Promise<unknown>;
  /** Overrides every schedule's interval (tests). */
  intervalMs?: number;
  logger: RuntimeLogger;
}) {
  const timers = options.schedules.map((entry) => {
    const interval = options.intervalMs ?? scheduleIntervalMs(entry.expression);
    let running = false;
    return setInterval(() => {
      // A run still in progress is not overlapped, like a Lambda at reserved concurrency 1.
      if (running) return;
      running = true;
      const event = { "detail-type": "Scheduled Event", source: "aws.scheduler", time: new Date().toISOString() };
      options
        .invoke(entry, event)
        .catch((error) => options.logger.error(`${entry.id}: scheduled run failed`, errorDetails(error)))
        .finally(() => {
          running = false;
        });
    }, interval);
  });
  return {
    stop() {
      for (const timer of timers) clearInterval(timer);
    },
  };
}
