/**
 * Job creation (docs/pipeline.md, step 1): validate everything, freeze metric versions, store the job
 * with its call pages, and hand fan-out to the dispatcher — one message per page — so the
 * API answers fast whatever the job's size.
 */
import { randomUUID } from "node:crypto";
import { assertModelsAllowed } from "../allowed-models.ts";
import { assertWithinBudget, remainingBudgetUsd } from "../budget.ts";
import { mapLimit, unique } from "../concurrency.ts";
import { config, requireQueueUrl } from "../config.ts";
import { invalid, unavailable } from "../errors.ts";
import { logger } from "../logger.ts";
import type {
  CollectionJob,
  CreateJobInput,
  DispatchMessage,
  FrozenMetric,
  JudgeMode,
  LlmMode,
} from "../schemas/job.ts";
import { createInlineCall, findMissingCalls } from "../store/calls.ts";
import { getJob, getJobItem, putNewJob, transitionJob } from "../store/jobs.ts";
import { assertKnownReferences, assertNotArchived, resolveMetricVersions } from "../store/metrics.ts";
import { organizationSettings } from "../store/organizations.ts";
import { generateWebhookSecret } from "../webhooks/signature.ts";
import { assertWebhookUrl } from "../webhooks/url-safety.ts";
import { estimateJobCost } from "./estimate-job.ts";
import { sendMessages } from "./queue.ts";

/** A dispatcher invocation expands at most this many items, well inside its timeout. */
const ITEMS_PER_PAGE = 5_000;
const MAX_CALLS_PER_PAGE = 2_000;
/** What a page's list of entries may weigh: a quarter of DynamoDB's item limit, billed once when stored. */
export const PAGE_BUDGET_BYTES = 100 * 1024;

export function splitIntoPages(callIds: string[], metricCount: number): string[][] {
  const callsPerPage = Math.max(1, Math.min(MAX_CALLS_PER_PAGE, Math.floor(ITEMS_PER_PAGE / metricCount)));
  const pages: string[][] = [];
  for (let i = 0; i < callIds.length; i += callsPerPage) pages.push(callIds.slice(i, i + callsPerPage));
  return pages;
}

/** The lower of the job's own cap and the organization's. */
function costCap(own: number | undefined, organization: number | null | undefined): number | undefined {
  const caps = [own, organization].filter((cap): cap is number => typeof cap === "number");
  return caps.length > 0 ? Math.min(...caps) : undefined;
}

export async function createCollectionJob(
  orgId: string,
  input: CreateJobInput,
  options: {
    triggeredBy?: CollectionJob["triggeredBy"];
    policyIds?: string[];
    jobId?: string;
    /** A URL checked when its policy was saved (and checked again at delivery), not now. */
    webhookUrl?: string;
  } = {},
): Promise<CollectionJob & { webhookSecret?: string }> {
  // Duplicates would name the same item twice and the job could never reach its total.
  const storedCallIds = unique(input.callIds ?? []);
  const [{ definitions, unknownMetricIds, unknownVersions }, missingCalls] = await Promise.all([
    resolveMetricVersions(orgId, input.metrics),
    findMissingCalls(orgId, storedCallIds),
  ]);
  assertKnownReferences({ unknownMetricIds, unknownVersions, unknownCallIds: missingCalls });
  // Jobs of policies and backfills were checked when they were saved.
  if (!options.triggeredBy) {
    assertNotArchived(definitions);
    await assertModelsAllowed(orgId, definitions);
  }
  const metrics: FrozenMetric[] = definitions.map(({ id, version, slug, name }) => ({ id, version, slug, name }));
  const totalItems = (storedCallIds.length + (input.calls?.length ?? 0)) * metrics.length;
  if (totalItems > config().maxJobItems) {
    throw invalid(`A job may hold at most ${config().maxJobItems} items (calls x metrics); this one has ${totalItems}`);
  }

  if (input.webhookUrl) await assertWebhookUrl(input.webhookUrl);
  // Stored once the request is known good; a job refused for its budget leaves them to their TTL.
  const inlineCallIds = input.calls ? await mapLimit(input.calls, 8, (call) => createInlineCall(orgId, call)) : [];
  const callIds = [...storedCallIds, ...inlineCallIds];
  const pages = splitIntoPages(callIds, metrics.length);
  const [settings, remaining] = await Promise.all([organizationSettings(orgId), remainingBudgetUsd(orgId)]);
  if (remaining !== undefined && !options.triggeredBy) {
    // Expected to cost at least the estimate's low end; refused before anything is stored.
    const { estimatedCostUsd } = await estimateJobCost(orgId, { ...input, callIds, definitions });
    await assertWithinBudget(orgId, estimatedCostUsd.low, "This job", remaining);
  }
  const maxCostUsd = costCap(costCap(input.maxCostUsd, settings.maxJobCostUsd), remaining);
  const webhookSecret = input.webhookSigning === "job" ? generateWebhookSecret() : undefined;
  const job = await startJob(orgId, {
    ...(maxCostUsd === undefined ? {} : { maxCostUsd }),
    metrics,
    pages,
    totalItems,
    callCount: callIds.length,
    metadata: input.metadata,
    webhookUrl: input.webhookUrl,
    expiresInSeconds: input.expiresInSeconds,
    ...(input.webhookProgress ? { webhookProgress: true } : {}),
    judgeMode: input.judgeMode,
    llmMode: input.llmMode,
    ...(webhookSecret ? { webhookSecret } : {}),
    ...options,
  });
  // The one answer that shows the job's own secret.
  return webhookSecret ? { ...job, webhookSecret } : job;
}

/**
 * A page entry names a call, optionally with the subset of the job's metrics to run on it
 * (`callId|metricId,metricId`), for jobs that are not a full calls × metrics grid
 * (retries of failed items, backfills of missing values).
 */
const pageEntry = (callId: string, metricIds?: string[]) => (metricIds ? `${callId}|${metricIds.join(",")}` : callId);

export function parsePageEntry(entry: string): { callId: string; metricIds?: string[] } {
  const [callId = "", metricIds] = entry.split("|");
  return metricIds === undefined ? { callId } : { callId, metricIds: metricIds.split(",") };
}

/**
 * Pages of ≤ ITEMS_PER_PAGE items and ≤ PAGE_BUDGET_BYTES for explicit (call, metrics)
 * entries: 5,000 entries of one metric each would otherwise make a page item of ~370 KB.
 */
export function pagesForEntries(entries: { callId: string; metricIds: string[] }[]): string[][] {
  const pages: string[][] = [];
  let page: string[] = [];
  let items = 0;
  let bytes = 0;
  for (const entry of entries) {
    const text = pageEntry(entry.callId, entry.metricIds);
    // A list element costs its UTF-8 bytes and a byte of overhead.
    const entryBytes = Buffer.byteLength(text) + 1;
    const full = items + entry.metricIds.length > ITEMS_PER_PAGE || bytes + entryBytes > PAGE_BUDGET_BYTES;
    if (full && page.length > 0) {
      pages.push(page);
      page = [];
      items = 0;
      bytes = 0;
    }
    page.push(text);
    items += entry.metricIds.length;
    bytes += entryBytes;
  }
  if (page.length > 0) pages.push(page);
  return pages;
}

export interface StartJobInput {
  metrics: FrozenMetric[];
  pages: string[][];
  totalItems: number;
  callCount: number;
  metadata?: CollectionJob["metadata"];
  triggeredBy?: CollectionJob["triggeredBy"];
  policyIds?: string[];
  webhookUrl?: string;
  judgeMode?: JudgeMode;
  llmMode?: LlmMode;
  maxCostUsd?: number;
  /** Progress events at each tenth of its items. */
  webhookProgress?: boolean;
  /** The job's own webhook signing secret (webhookSigning: job); never in the job's answers. */
  webhookSecret?: string;
  /** Still running this long after its creation, the job ends EXPIRED. */
  expiresInSeconds?: number;
  /** A caller-chosen id makes creation idempotent: a second start with it fails its condition. */
  jobId?: string;
}

/** Stores a validated job with its pages and hands the fan-out to the dispatcher. */
export async function startJob(orgId: string, input: StartJobInput): Promise<CollectionJob> {
  const created = new Date();
  const now = created.toISOString();
  const job: CollectionJob = {
    id: input.jobId ?? randomUUID(),
    status: "PENDING",
    triggeredBy: input.triggeredBy ?? "API",
    totalItems: input.totalItems,
    completedItems: 0,
    failedItems: 0,
    callCount: input.callCount,
    metrics: input.metrics,
    judgeMode: input.judgeMode ?? "isolated",
    llmMode: input.llmMode ?? "realtime",
    policyIds: input.policyIds ?? [],
    metadata: input.metadata ?? {},
    ...(input.webhookUrl ? { webhookUrl: input.webhookUrl } : {}),
    ...(input.webhookSecret ? { webhookSigning: "job" as const } : {}),
    ...(input.webhookProgress ? { webhookProgress: true as const } : {}),
    ...(input.maxCostUsd === undefined ? {} : { maxCostUsd: input.maxCostUsd }),
    ...(input.expiresInSeconds === undefined
      ? {}
      : { expiresAt: new Date(created.getTime() + input.expiresInSeconds * 1000).toISOString() }),
    createdAt: now,
    updatedAt: now,
  };
  const pages = input.pages;
  await putNewJob(orgId, job, pages, { webhookSecret: input.webhookSecret });

  try {
    await sendDispatchMessages(orgId, job.id, pages.length);
  } catch (error) {
    logger.error("Could not enqueue job fan-out", { jobId: job.id, error: error as Error });
    return failUnlessStarted(orgId, job);
  }
  return job;
}

/**
 * After a failed fan-out: a job no dispatcher has started yet is FAILED with its reason, and
 * the caller may create it again (503). A job a dispatcher already started (some pages went
 * out) lives on: the reconciler re-sends its missing items, so it is answered as created,
 * never as a job to create a second time.
 */
async function failUnlessStarted(orgId: string, job: CollectionJob): Promise<CollectionJob> {
  const errorMessage = "The job could not be queued for processing; create it again";
  const failed = await transitionJob(orgId, job.id, ["PENDING"], "FAILED", {
    errorMessage,
    completedAt: new Date().toISOString(),
  });
  if (failed) throw unavailable(errorMessage, 5);
  logger.warn("Job fan-out partly sent; the reconciler completes it", { jobId: job.id });
  return (await getJob(orgId, job.id)) ?? job;
}

function sendDispatchMessages(orgId: string, jobId: string, pageCount: number) {
  const messages = Array.from({ length: pageCount }, (_, page): DispatchMessage => ({ orgId, jobId, page }));
  return sendMessages(
    requireQueueUrl("dispatch"),
    messages.map((m) => JSON.stringify(m)),
  );
}

/** Re-sends the fan-out of a job still PENDING (its creator stopped after storing it). */
export async function redispatchPendingJob(orgId: string, jobId: string): Promise<void> {
  const item = await getJobItem(orgId, jobId, true);
  if (item?.status !== "PENDING") return;
  await sendDispatchMessages(orgId, jobId, Number(item.pageCount ?? 0));
}
