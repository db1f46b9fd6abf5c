/**
 * One backfill run: freeze a cutoff, list the organization's calls in the filter's window
 * (the calls index, newest first, bounded by createdAt — no scan), keep the pairs that lack a
 * value for the metric's current version (onlyMissing), and start one job over them.
 * A run holds a lock on the backfill and never starts while its previous job still runs,
 * so overlapping runs cannot evaluate the same pair twice.
 */
import { createHash } from "node:crypto";
import { mapLimit } from "../concurrency.ts";
import { config } from "../config.ts";
import { conflict, isDomainError, notFound } from "../errors.ts";
import { keys } from "../keys.ts";
import { logger } from "../logger.ts";
import { pagesForEntries, startJob } from "../pipeline/create-job.ts";
import { type Backfill, type BackfillRun, parseLookback } from "../schemas/backfill.ts";
import { type FrozenMetric, isRunningStatus } from "../schemas/job.ts";
import { deleteDueMarker, dueBackfills, getBackfill, scheduleNextRun } from "../store/backfills.ts";
import { getJob } from "../store/jobs.ts";
import { getMetric } from "../store/metrics.ts";
import { baseItems, queryAll, queryItems } from "../store/query.ts";
import { conditionHeld, table } from "../store/table.ts";

const LOCK_MS = 15 * 60_000;
const COUNTS_AS_VALUE = new Set(["SUCCESS", "NOT_APPLICABLE", "DATA_MISSING"]);

interface CandidateCall {
  id: string;
  agentId: string;
  startedAt: string;
  properties: Record<string, string>;
}

/** Calls created since `since` (or ever), filtered by the backfill's call filter, oldest first. */
async function candidateCalls(orgId: string, backfill: Backfill, since: string | undefined, cutoff: string) {
  const entries = await queryAll({
    IndexName: "gsi1",
    KeyConditionExpression: since
      ? "gsi1pk = :list AND gsi1sk BETWEEN :since AND :cutoff"
      : "gsi1pk = :list AND gsi1sk <= :cutoff",
    ExpressionAttributeValues: {
      ":list": keys.callList(orgId),
      ":cutoff": `${cutoff}\uffff`,
      ...(since ? { ":since": since } : {}),
    },
  });
  const calls = (await baseItems(entries, ["id", "agentId", "startedAt", "properties"])) as unknown as CandidateCall[];
  const { agentId, properties } = backfill.callFilter;
  return calls
    .filter((call) => (!since || call.startedAt >= since) && call.startedAt <= cutoff)
    .filter((call) => !agentId || call.agentId === agentId)
    .filter((call) => Object.entries(properties ?? {}).every(([key, value]) => call.properties?.[key] === value))
    .sort((a, b) => a.startedAt.localeCompare(b.startedAt));
}

/** `metricId@version` of every counted value a call has. */
async function valuesOf(orgId: string, callId: string): Promise<Set<string>> {
  const found = new Set<string>();
  const values = queryItems({
    IndexName: "gsi1",
    KeyConditionExpression: "gsi1pk = :values",
    ExpressionAttributeValues: { ":values": keys.callValues(orgId, callId) },
    ProjectionExpression: "pk, sk, metricVersion, captureStatus",
  });
  for await (const item of values) {
    if (!COUNTS_AS_VALUE.has(String(item.captureStatus))) continue;
    const { metricDefinitionId } = keys.parseItemResult(String(item.pk), String(item.sk));
    found.add(`${metricDefinitionId}@${item.metricVersion}`);
  }
  return found;
}

/**
 * Takes the run lock, on condition that no other run holds it and that no run started a job
 * since `seenLastJobId` was read (the job this run checked is still the latest one): a run
 * that read the backfill before another run started its job cannot start a second one.
 */
async function acquire(
  orgId: string,
  backfillId: string,
  now: Date,
  jobId: string,
  seenLastJobId: string | undefined,
): Promise<boolean> {
  return conditionHeld(
    table.update({
      Key: keys.backfill(orgId, backfillId),
      UpdateExpression: "SET runningUntil = :until, lastJobId = :job",
      ConditionExpression: `attribute_exists(pk) AND (attribute_not_exists(runningUntil) OR runningUntil < :now) AND ${
        seenLastJobId ? "lastJobId = :seen" : "attribute_not_exists(lastJobId)"
      }`,
      ExpressionAttributeValues: {
        ":until": new Date(now.getTime() + LOCK_MS).toISOString(),
        ":now": now.toISOString(),
        ":job": jobId,
        ...(seenLastJobId ? { ":seen": seenLastJobId } : {}),
      },
    }),
  );
}

async function release(orgId: string, backfillId: string, run: BackfillRun, keepJob: boolean) {
  await table.update({
    Key: keys.backfill(orgId, backfillId),
    UpdateExpression: keepJob
      ? "SET lastRun = :run REMOVE runningUntil"
      : "SET lastRun = :run REMOVE runningUntil, lastJobId",
    ExpressionAttributeValues: { ":run": run },
  });
}

type RunEntry = { callId: string; metricIds: string[] };

/** The calls the run covers, each with the metrics it still needs (all, unless onlyMissing). */
async function entriesToRun(orgId: string, backfill: Backfill, now: Date, cutoff: string) {
  const lookbackMs = backfill.callFilter.lookback ? parseLookback(backfill.callFilter.lookback) : undefined;
  const since =
    backfill.callFilter.startedAfter ??
    (lookbackMs !== undefined ? new Date(now.getTime() - lookbackMs).toISOString() : undefined);
  const definitions = await Promise.all(backfill.metrics.map((m) => getMetric(orgId, m.id)));
  // Current versions: values from older versions count as missing (re-run after a change).
  const metrics: FrozenMetric[] = definitions
    .filter((d) => d !== undefined)
    .map(({ id, version, slug, name }) => ({ id, version, slug, name }));
  const calls = await candidateCalls(orgId, backfill, since, cutoff);
  const existing = backfill.onlyMissing
    ? await mapLimit(calls, 16, (call) => valuesOf(orgId, call.id))
    : calls.map(() => new Set<string>());
  const entries: RunEntry[] = calls
    .map((call, index) => ({
      callId: call.id,
      metricIds: metrics.filter((m) => !existing[index]?.has(`${m.id}@${m.version}`)).map((m) => m.id),
    }))
    .filter((entry) => entry.metricIds.length > 0);
  return { metrics, entries };
}

/** The oldest entries up to `cap` items; the rest wait for the next run, which says so. */
function capped(entries: RunEntry[], cap: number): { entries: RunEntry[]; items: number; errorMessage?: string } {
  const items = entries.reduce((sum, e) => sum + e.metricIds.length, 0);
  if (items <= cap) return { entries, items };
  const kept: RunEntry[] = [];
  let count = 0;
  for (const entry of entries) {
    if (count + entry.metricIds.length > cap) break;
    kept.push(entry);
    count += entry.metricIds.length;
  }
  return {
    entries: kept,
    items: count,
    errorMessage: `Run capped at ${count} of ${items} items (BACKFILL_MAX_ITEMS=${cap}); the oldest calls ran first, the rest run next time`,
  };
}

export async function runBackfill(
  orgId: string,
  backfillId: string,
  trigger: BackfillRun["trigger"],
  now = new Date(),
): Promise<BackfillRun> {
  const backfill = await getBackfill(orgId, backfillId);
  if (!backfill) throw notFound("Backfill", backfillId);
  const cutoff = now.toISOString();
  const skipped = (reason: string): BackfillRun => ({
    at: cutoff,
    trigger,
    status: "skipped",
    items: 0,
    cutoff,
    errorMessage: reason,
  });

  if (backfill.lastJobId) {
    const previous = await getJob(orgId, backfill.lastJobId);
    if (previous && isRunningStatus(previous.status)) {
      const reason = `The previous run's job ${previous.id} is still ${previous.status}`;
      if (trigger === "manual") throw conflict(reason);
      return skipped(reason);
    }
  }
  // The job id is fixed before anything is written: a crashed run is found by the next one.
  const jobId = createHash("sha256").update(`${backfillId}|${cutoff}`).digest("hex");
  const uuid = `${jobId.slice(0, 8)}-${jobId.slice(8, 12)}-5${jobId.slice(13, 16)}-b${jobId.slice(17, 20)}-${jobId.slice(20, 32)}`;
  if (!(await acquire(orgId, backfillId, now, uuid, backfill.lastJobId))) {
    if (trigger === "manual") throw conflict(`Backfill ${backfillId} is already running`);
    return skipped("Another run holds the lock");
  }

  try {
    const { metrics, entries: found } = await entriesToRun(orgId, backfill, now, cutoff);
    const { entries, items, errorMessage } = capped(found, config().backfillMaxItems);
    if (items === 0) {
      const run: BackfillRun = { at: cutoff, trigger, status: "nothing-to-do", items: 0, cutoff };
      await release(orgId, backfillId, run, false);
      return run;
    }
    const used = metrics.filter((m) => entries.some((e) => e.metricIds.includes(m.id)));
    try {
      await startJob(orgId, {
        jobId: uuid,
        metrics: used,
        pages: pagesForEntries(entries),
        totalItems: items,
        callCount: entries.length,
        metadata: { backfillId, cutoff },
        triggeredBy: "SCHEDULE",
        webhookUrl: backfill.webhookUrl,
        judgeMode: backfill.judgeMode,
        llmMode: backfill.llmMode,
      });
    } catch (error) {
      // Started by an earlier run of this cutoff that stopped before releasing the lock.
      if (!isDomainError(error, "conflict")) throw error;
    }
    const run: BackfillRun = {
      at: cutoff,
      trigger,
      status: "started",
      jobId: uuid,
      items,
      cutoff,
      ...(errorMessage ? { errorMessage } : {}),
    };
    await release(orgId, backfillId, run, true);
    logger.info("Backfill run started", { backfillId, jobId: uuid, items });
    return run;
  } catch (error) {
    await release(orgId, backfillId, skipped(`Run failed: ${(error as Error).message}`), false).catch(() => {});
    throw error;
  }
}

/** Scheduled: runs every due backfill and schedules its next run. */
export async function runDueBackfills(now = new Date()): Promise<number> {
  let runs = 0;
  for (const { orgId, backfillId } of await dueBackfills(now)) {
    const backfill = await getBackfill(orgId, backfillId);
    try {
      if (backfill?.status === "ACTIVE") {
        await runBackfill(orgId, backfillId, "schedule", now);
        runs++;
      }
    } catch (error) {
      logger.error("Backfill run failed", { backfillId, error: error as Error });
    }
    if (backfill) await scheduleNextRun(orgId, backfill, now);
    else await deleteDueMarker(orgId, backfillId);
  }
  return runs;
}
