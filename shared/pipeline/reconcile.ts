/**
 * The job reconciler (docs/operations.md): nothing relies on one delivery. A scheduled run reads
 * the running-job markers (a sparse index, never a scan), looks only at jobs that made no
 * progress for the stall threshold, and repairs each:
 *
 * - PENDING: its dispatch messages were never sent (or lost): re-send them all; the
 *   dispatcher is idempotent.
 * - PROCESSING, counters short of the total: re-send the work items that have no recorded
 *   value (a page never dispatched, messages lost), except those waiting in a message batch
 *   (batch mode: hours without progress are normal there). Recording is exactly-once, so an
 *   item that was in flight after all is counted once.
 * - PROCESSING, counters complete: finalize it as the stream finalizer would (its record
 *   was lost) and queue its webhook once.
 * - Past the hard ceiling since creation: record every unrecorded item as ERROR, then
 *   finalize, so the job ends COMPLETED or FAILED with honest counters.
 * - Past its expiry (created with `expiresInSeconds`), still running: EXPIRED, or finalized
 *   when every item is recorded. Read from a second marker, whether it stalled or not.
 * - Final (or gone) but still marked running: queue a webhook never queued, drop the marker.
 *
 * Two runs at once are safe: a repair first claims the job with a conditional write on the
 * `updatedAt` it read (one run wins), finalization is a conditional transition, and
 * recording is exactly-once.
 */

import { mapLimit } from "../concurrency.ts";
import { config, requireQueueUrl } from "../config.ts";
import { keys } from "../keys.ts";
import { logger } from "../logger.ts";
import { publishReconcilerMetrics } from "../observability.ts";
import {
  type DispatchMessage,
  type FrozenMetric,
  isRunningStatus,
  type JobStatus,
  type WorkItem,
} from "../schemas/job.ts";
import { batchGet } from "../store/batch-get.ts";
import {
  claimStalledJob,
  deleteRunningJobMarker,
  getJobItem,
  getJobPage,
  listJobsPastExpiry,
  listRunningJobs,
  transitionJob,
} from "../store/jobs.ts";
import { itemsInOpenSubmissions } from "../store/llm-submissions.ts";
import { listRecordedItemKeys } from "../store/values.ts";
import { stopJob } from "./cancel-job.ts";
import { isBulkJob, workItemsForPage } from "./dispatch.ts";
import { announceJobEnd, FINAL_STATUSES, type FinalizableJob, finalizeJob, finishedStatus } from "./finalize.ts";
import { sendMessages, workMessage } from "./queue.ts";
import { type ItemResult, itemErrorValue, type RecordOutcome, recordResults } from "./record.ts";

export type Repair = "forget" | "close" | "finalize" | "deadline" | "expire" | "redispatch" | "resend";

/** A stored job item, as far as the reconciler reads it. */
export interface StoredJob extends FinalizableJob {
  status: JobStatus;
  createdAt: string;
  updatedAt: string;
  pageCount?: number;
  metrics: FrozenMetric[];
  policyIds?: string[];
  webhook?: unknown;
  triggeredBy?: string;
}

export interface ReconcileSettings {
  now: Date;
  /** A job whose `updatedAt` is older than this is stalled. */
  stallSeconds: number;
  /** A job created longer ago than this has its unrecorded items recorded as ERROR. */
  ceilingSeconds: number;
}

const secondsBefore = (now: Date, seconds: number) => new Date(now.getTime() - seconds * 1000).toISOString();

/** What a marked job needs, if anything: nothing unless it stalled. */
export function repairFor(job: StoredJob | undefined, settings: ReconcileSettings): Repair | undefined {
  if (!job) return "forget";
  if (isRunningStatus(job.status) && job.deadlineAt !== undefined && job.deadlineAt <= settings.now.toISOString())
    return "deadline";
  if (job.updatedAt >= secondsBefore(settings.now, settings.stallSeconds)) return undefined;
  if (FINAL_STATUSES.has(job.status)) return "close";
  if (finishedStatus(job)) return "finalize";
  if (job.createdAt < secondsBefore(settings.now, settings.ceilingSeconds)) return "expire";
  return job.status === "PENDING" ? "redispatch" : "resend";
}

export interface ReconcilerDeps {
  now: () => Date;
  stallSeconds: number;
  ceilingSeconds: number;
  sendDispatch: (messages: DispatchMessage[]) => Promise<void>;
  sendWork: (items: WorkItem[]) => Promise<void>;
  recordResults: (results: ItemResult[]) => Promise<Map<string, RecordOutcome>>;
  publishRepairs: (repairs: { jobs: number; itemsResent: number; itemsExpired: number }) => void;
}

export const defaultReconcilerDeps = (): ReconcilerDeps => ({
  now: () => new Date(),
  stallSeconds: config().reconcileStallSeconds,
  ceilingSeconds: config().reconcileCeilingSeconds,
  sendDispatch: (messages) =>
    sendMessages(
      requireQueueUrl("dispatch"),
      messages.map((message) => JSON.stringify(message)),
    ),
  sendWork: (items) =>
    sendMessages(
      requireQueueUrl("work"),
      items.map((item) => workMessage(item)),
    ),
  recordResults,
  publishRepairs: publishReconcilerMetrics,
});

export interface RepairDone {
  orgId: string;
  jobId: string;
  repair: Repair;
  /** Work items re-sent (resend) or recorded as ERROR (expire). */
  items?: number;
}

export interface ReconcileReport {
  /** Running jobs old enough to have stalled, read by this run. */
  examined: number;
  repairs: RepairDone[];
  /** Jobs whose repair threw; the next run tries again. */
  failures: number;
}

/** Repairs that mean a delivery was lost; marker clean-up alone is routine. */
const ALARMING: ReadonlySet<Repair> = new Set(["finalize", "expire", "redispatch", "resend"]);
const JOBS_IN_FLIGHT = 4;
const PAGES_IN_FLIGHT = 8;

export async function reconcileJobs(deps: ReconcilerDeps): Promise<ReconcileReport> {
  const settings: ReconcileSettings = {
    now: deps.now(),
    stallSeconds: deps.stallSeconds,
    ceilingSeconds: deps.ceilingSeconds,
  };
  // A job created within the stall threshold cannot have stalled yet: its marker is not even read.
  const [stalled, pastExpiry] = await Promise.all([
    listRunningJobs(secondsBefore(settings.now, settings.stallSeconds)),
    listJobsPastExpiry(settings.now.toISOString()),
  ]);
  const marked = [...new Map([...stalled, ...pastExpiry].map((job) => [`${job.orgId}#${job.jobId}`, job])).values()];
  const report: ReconcileReport = { examined: marked.length, repairs: [], failures: 0 };
  if (marked.length === 0) return report;
  const stored = await batchGet(marked.map(({ orgId, jobId }) => keys.job(orgId, jobId)));
  const byKey = new Map(stored.map((item) => [String(item.pk), item as unknown as StoredJob]));

  await mapLimit(marked, JOBS_IN_FLIGHT, async ({ orgId, jobId }) => {
    const job = byKey.get(keys.job(orgId, jobId).pk);
    const repair = repairFor(job, settings);
    if (!repair) return;
    try {
      const done = await applyRepair(repair, orgId, jobId, job, settings, deps);
      if (!done) return;
      report.repairs.push(done);
      const log = ALARMING.has(repair) ? logger.warn.bind(logger) : logger.info.bind(logger);
      log("Reconciler repaired a stalled job", { ...done });
    } catch (error) {
      report.failures++;
      logger.error("Reconciler could not repair a job; the next run tries again", {
        orgId,
        jobId,
        repair,
        error: error as Error,
      });
    }
  });

  // A batch-mode job whose items all wait on the provider is re-read, not repaired.
  const alarming = report.repairs.filter(
    (done) => ALARMING.has(done.repair) && !(done.repair === "resend" && done.items === 0),
  );
  if (alarming.length > 0) {
    const items = (repair: Repair) =>
      alarming.filter((done) => done.repair === repair).reduce((sum, done) => sum + (done.items ?? 0), 0);
    deps.publishRepairs({ jobs: alarming.length, itemsResent: items("resend"), itemsExpired: items("expire") });
  }
  return report;
}

/** Applies one repair; undefined when another run claimed the job first. */
async function applyRepair(
  repair: Repair,
  orgId: string,
  jobId: string,
  job: StoredJob | undefined,
  settings: ReconcileSettings,
  deps: ReconcilerDeps,
): Promise<RepairDone | undefined> {
  const done = (items?: number): RepairDone => ({ orgId, jobId, repair, ...(items !== undefined ? { items } : {}) });
  if (repair === "forget" || !job) {
    await deleteRunningJobMarker(orgId, jobId);
    return done();
  }
  switch (repair) {
    case "close":
      // Its end was never announced when the stream record that showed it was lost.
      if (job.webhook === undefined) await announceJobEnd(job);
      await deleteRunningJobMarker(orgId, jobId, job);
      return done();
    case "finalize":
      return (await finishJob(orgId, jobId)) ? done() : undefined;
    case "deadline": {
      // The stream router announces and unmarks an EXPIRED job; a finished one is finalized here.
      if (await finishJob(orgId, jobId)) return done(0);
      const ended = await stopJob(orgId, jobId, { status: "EXPIRED", at: "expiredAt" });
      return ended?.status === "EXPIRED" ? done(ended.notRunItems) : undefined;
    }
    case "redispatch": {
      if (!(await claimStalledJob(orgId, jobId, job.updatedAt, settings.now.toISOString()))) return undefined;
      const pages = Number(job.pageCount ?? 0);
      await deps.sendDispatch(Array.from({ length: pages }, (_, page) => ({ orgId, jobId, page })));
      return done(pages);
    }
    case "resend": {
      if (!(await claimStalledJob(orgId, jobId, job.updatedAt, settings.now.toISOString()))) return undefined;
      const missing = await unrecordedItems(orgId, job);
      await deps.sendWork(missing);
      return done(missing.length);
    }
    case "expire": {
      if (!(await claimStalledJob(orgId, jobId, job.updatedAt, settings.now.toISOString()))) return undefined;
      if (job.status === "PENDING") {
        await transitionJob(orgId, jobId, ["PENDING"], "PROCESSING", { startedAt: settings.now.toISOString() });
      }
      const missing = await unrecordedItems(orgId, job);
      const outcomes = await deps.recordResults(missing.map((item) => expiredResult(item, job, settings)));
      await finishJob(orgId, jobId);
      return done([...outcomes.values()].filter((outcome) => outcome === "recorded").length);
    }
  }
}

/** Finalizes a job whose counters are complete; announces and unmarks it when this call finalized it. */
async function finishJob(orgId: string, jobId: string): Promise<boolean> {
  const current = (await getJobItem(orgId, jobId, true)) as StoredJob | undefined;
  if (!current) return false;
  const status = await finalizeJob(current);
  if (!status) return false;
  await announceJobEnd({ ...current, status });
  await deleteRunningJobMarker(orgId, jobId, current);
  return true;
}

/** The job's work items that have no recorded value and are not waiting in a message batch. */
async function unrecordedItems(orgId: string, job: StoredJob): Promise<WorkItem[]> {
  const pageNumbers = Array.from({ length: Number(job.pageCount ?? 0) }, (_, page) => page);
  const [pages, recorded, waiting] = await Promise.all([
    mapLimit(pageNumbers, PAGES_IN_FLIGHT, async (page) => {
      const entries = await getJobPage(orgId, job.id, page);
      if (!entries) throw new Error(`Job ${job.id} has no page ${page}`);
      return entries;
    }),
    listRecordedItemKeys(orgId, job.id),
    itemsInOpenSubmissions(orgId, job.id),
  ]);
  return pages
    .flatMap((entries) => workItemsForPage(orgId, job.id, entries, job.metrics, isBulkJob(job)))
    .filter((item) => {
      const { sk } = keys.itemResult(orgId, job.id, item.callId, item.metricId);
      return !recorded.has(sk) && !waiting.has(sk);
    });
}

function expiredResult(item: WorkItem, job: StoredJob, settings: ReconcileSettings): ItemResult {
  return {
    // Not an SQS message: one stable id per item, so a repeated expiry names the same item.
    messageId: `reconciler:${item.jobId}:${item.callId}:${item.metricId}`,
    item,
    value: itemErrorValue(item, `Not processed within ${settings.ceilingSeconds} seconds of the job's creation`, {
      computedAt: settings.now.toISOString(),
      policyIds: job.policyIds,
    }),
  };
}
