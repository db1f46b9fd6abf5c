/**
 * The job reconciler on the real engines: each test leaves a job in a state a lost
 * delivery or a crash leaves behind, runs the reconciler's domain function with a clock
 * past the stall threshold (or the ceiling), and checks the job ends with exact counts.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { SendMessageBatchCommand } from "@aws-sdk/client-sqs";
import type { Context, DynamoDBStreamEvent, SQSEvent, SQSRecord } from "aws-lambda";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { dynamo, sqs } from "../../shared/aws.ts";
import { DomainError } from "../../shared/errors.ts";
import { startJob } from "../../shared/pipeline/create-job.ts";
import {
  defaultReconcilerDeps,
  type ReconcileReport,
  type ReconcilerDeps,
  reconcileJobs,
} from "../../shared/pipeline/reconcile.ts";
import type { CollectionJob, FrozenMetric } from "../../shared/schemas/job.ts";
import { listRunningJobs, putNewJob } from "../../shared/store/jobs.ts";
import { createCalls, createMetrics, jobValues, standardMetrics } from "../support/fixtures.ts";
import { startTestStack, type TestStack, waitFor, waitForJobEnd } from "../support/stack.ts";

type SqsHandler = (event: SQSEvent, context: Context) => Promise<unknown>;
type StreamHandler = (event: DynamoDBStreamEvent, context: Context) => Promise<unknown>;

const realEvaluator: SqsHandler = (await import("../../functions/workers/evaluator.ts")).handler;
const realStreamRouter: StreamHandler = (await import("../../functions/workers/stream-router.ts")).handler;
let evaluator = realEvaluator;
let streamRouter = realStreamRouter;
let stack: TestStack;

const webhookBodies: string[] = [];
const receiver = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (chunk: Buffer) => chunks.push(chunk));
  req.on("end", () => {
    webhookBodies.push(Buffer.concat(chunks).toString("utf8"));
    res.writeHead(200).end();
  });
});
let receiverUrl: string;

beforeAll(async () => {
  stack = await startTestStack({
    runtime: {
      handlerOverrides: {
        evaluator: (event: SQSEvent, context: Context) => evaluator(event, context),
        "stream-router": (event: DynamoDBStreamEvent, context: Context) => streamRouter(event, context),
        // Only the runs each test starts, with its own clock.
        reconciler: async () => {},
      },
    },
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;
});
afterAll(async () => {
  receiver.close();
  await stack?.stop();
});
afterEach(() => {
  evaluator = realEvaluator;
  streamRouter = realStreamRouter;
  vi.restoreAllMocks();
});

const STALL_SECONDS = 900;
const CEILING_SECONDS = 86_400;
/** A reconciler run whose clock is `aheadSeconds` past now: the test's jobs look that old. */
const reconcile = (aheadSeconds: number, overrides: Partial<ReconcilerDeps> = {}) =>
  reconcileJobs({
    ...defaultReconcilerDeps(),
    stallSeconds: STALL_SECONDS,
    ceilingSeconds: CEILING_SECONDS,
    now: () => new Date(Date.now() + aheadSeconds * 1000),
    ...overrides,
  });
const pastStall = STALL_SECONDS + 60;
const pastCeiling = CEILING_SECONDS + 60;
const repairsOf = (report: ReconcileReport, jobId: string) => report.repairs.filter((done) => done.jobId === jobId);

let run = 0;
/** Calls and fresh metric definitions for a job of `calls` calls x 3 metrics, one call per page. */
async function jobParts(calls: number) {
  run++;
  const callIds = await createCalls(stack.api, calls);
  const created = await createMetrics(
    stack.api,
    standardMetrics.map((metric) => ({ ...metric, slug: `${metric.slug}-r${run}` })),
  );
  const metrics: FrozenMetric[] = created.map(({ id, version, slug }) => ({ id, version, slug, name: slug }));
  return {
    callIds,
    metrics,
    pages: callIds.map((callId) => [callId]),
    totalItems: callIds.length * metrics.length,
    callCount: callIds.length,
  };
}

/** What startJob stores before it sends the fan-out: a creator that crashed right after. */
async function storeJobWithoutDispatch(parts: Awaited<ReturnType<typeof jobParts>>) {
  const now = new Date().toISOString();
  const job: CollectionJob = {
    id: randomUUID(),
    status: "PENDING",
    triggeredBy: "API",
    judgeMode: "isolated",
    llmMode: "realtime",
    totalItems: parts.totalItems,
    completedItems: 0,
    failedItems: 0,
    callCount: parts.callCount,
    metrics: parts.metrics,
    policyIds: [],
    metadata: {},
    createdAt: now,
    updatedAt: now,
  };
  await putNewJob(stack.orgId, job, parts.pages);
  return job.id;
}

const getJob = async (jobId: string) => (await stack.api("GET", `/v1/metric/collection-jobs/${jobId}`)).body.data;
const waitForCounts = (jobId: string, done: number) =>
  waitFor(
    async () => {
      const job = await getJob(jobId);
      return job.completedItems + job.failedItems === done ? job : undefined;
    },
    { what: `job ${jobId} to count ${done} items` },
  );
const isMarkedRunning = async (jobId: string) =>
  (await listRunningJobs("9999")).some((marked) => marked.jobId === jobId);
const waitForUnmarked = (jobId: string) =>
  waitFor(async () => ((await isMarkedRunning(jobId)) ? undefined : true), { what: `job ${jobId} to be unmarked` });

/** Job counters must equal its stored values, each item once. */
async function expectExactCounts(job: any) {
  const values = await jobValues(stack.api, job.id);
  expect(new Set(values.map((v) => `${v.callId}|${v.metricDefinitionId}`)).size).toBe(values.length);
  expect(values).toHaveLength(job.totalItems);
  expect(job.completedItems).toBe(values.filter((v) => v.captureStatus !== "ERROR").length);
  expect(job.failedItems).toBe(values.filter((v) => v.captureStatus === "ERROR").length);
  expect(job.completedItems + job.failedItems).toBe(job.totalItems);
  return values;
}

/** Work items of one call are acknowledged without being recorded: their messages are lost. */
const losingItemsOf =
  (lostCallId: string): SqsHandler =>
  (event, context) =>
    realEvaluator(
      { Records: event.Records.filter((record) => JSON.parse(record.body).callId !== lostCallId) },
      context,
    );

describe("job reconciler", () => {
  it("does nothing, and writes nothing, when no job is stalled", async () => {
    const parts = await jobParts(2);
    const created = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds: parts.callIds,
      metrics: parts.metrics.map(({ id }) => ({ id })),
    });
    expect(created.status).toBe(201);
    const finished = await waitForJobEnd(stack.api, created.body.data.id);
    expect(finished.status).toBe("COMPLETED");
    // Finalization drops a finished job's marker: the reconciler never reads it again.
    await waitForUnmarked(finished.id);
    expect((await reconcile(pastStall)).examined).toBe(0);

    // A running job younger than the stall threshold is not even read.
    const young = await storeJobWithoutDispatch(await jobParts(1));
    expect(await isMarkedRunning(young)).toBe(true);
    const commands: string[] = [];
    const send = dynamo().send.bind(dynamo());
    // Only this run's commands: the local runtime's workers share the client in this process.
    const reconcilerRun = new AsyncLocalStorage<true>();
    vi.spyOn(dynamo(), "send").mockImplementation(((command: { constructor: { name: string } }) => {
      if (reconcilerRun.getStore()) commands.push(command.constructor.name);
      return send(command as never);
    }) as never);
    const sendDispatch = vi.fn(async () => {});
    const sendWork = vi.fn(async () => {});
    const recordResults = vi.fn(async () => new Map());
    const report = await reconcilerRun.run(true, () => reconcile(0, { sendDispatch, sendWork, recordResults }));
    vi.restoreAllMocks();
    expect(report).toEqual({ examined: 0, repairs: [], failures: 0 });
    // The two marker queries (stalled, past expiry), nothing more.
    expect(commands).toEqual(["QueryCommand", "QueryCommand"]);
    for (const sender of [sendDispatch, sendWork, recordResults]) expect(sender).not.toHaveBeenCalled();
    expect((await stack.api("POST", `/v1/metric/collection-jobs/${young}/cancel`)).status).toBe(200);
    await waitForUnmarked(young);
  });

  it("re-dispatches a PENDING job whose creator stopped before sending its fan-out", async () => {
    const parts = await jobParts(3);
    const jobId = await storeJobWithoutDispatch(parts);
    expect(repairsOf(await reconcile(pastStall), jobId)).toEqual([
      { orgId: stack.orgId, jobId, repair: "redispatch", items: 3 },
    ]);
    const job = await waitForJobEnd(stack.api, jobId);
    expect(job).toMatchObject({ status: "COMPLETED", totalItems: 9, completedItems: 9, failedItems: 0 });
    await expectExactCounts(job);
    await waitForUnmarked(jobId);
  });

  it("answers 503 and fails the job when no page of its fan-out could be sent", async () => {
    const parts = await jobParts(2);
    const realSend = sqs().send.bind(sqs());
    vi.spyOn(sqs(), "send").mockImplementation((async (command: any) => {
      if (command instanceof SendMessageBatchCommand && command.input.QueueUrl === stack.queueUrls.dispatch) {
        throw new Error("SQS unavailable");
      }
      return realSend(command);
    }) as never);
    const error = await startJob(stack.orgId, parts).catch((thrown: unknown) => thrown);
    vi.restoreAllMocks();
    expect(error).toBeInstanceOf(DomainError);
    expect(error).toMatchObject({ kind: "unavailable", retryAfterSeconds: 5 });
    const [failed] = (await stack.api("GET", "/v1/metric/collection-jobs?status=FAILED")).body.data;
    expect(failed).toMatchObject({
      status: "FAILED",
      totalItems: 6,
      errorMessage: expect.stringMatching(/create it again/),
    });
    await waitForUnmarked(failed.id);
  });

  it("answers a partly dispatched job as created and re-sends only its missing items, counting each once", async () => {
    const parts = await jobParts(3);
    const realSend = sqs().send.bind(sqs());
    let dispatchSends = 0;
    let jobId: string | undefined;
    vi.spyOn(sqs(), "send").mockImplementation((async (command: any) => {
      if (command instanceof SendMessageBatchCommand && command.input.QueueUrl === stack.queueUrls.dispatch) {
        if (dispatchSends++ > 0) return realSend(command);
        // The first page goes out and a dispatcher starts the job; then the queue fails.
        const entries = command.input.Entries ?? [];
        await realSend(new SendMessageBatchCommand({ ...command.input, Entries: entries.slice(0, 1) }));
        jobId = JSON.parse(entries[0]?.MessageBody ?? "{}").jobId;
        await waitFor(async () => ((await getJob(jobId as string))?.status === "PROCESSING" ? true : undefined), {
          what: "a dispatcher to start the job",
        });
        throw new Error("SQS unavailable");
      }
      return realSend(command);
    }) as never);
    const job = await startJob(stack.orgId, parts);
    vi.restoreAllMocks();
    expect(job).toMatchObject({ id: jobId, status: "PROCESSING" });

    await waitForCounts(job.id, 3);
    expect(repairsOf(await reconcile(pastStall), job.id)).toEqual([
      { orgId: stack.orgId, jobId: job.id, repair: "resend", items: 6 },
    ]);
    const finished = await waitForJobEnd(stack.api, job.id);
    expect(finished).toMatchObject({ status: "COMPLETED", completedItems: 9, failedItems: 0 });
    await expectExactCounts(finished);
  });

  it("finalizes a job whose counters are complete but whose stream record was lost, and sends its webhook once", async () => {
    // The stream router drops every record, as if the job's stream record were lost.
    streamRouter = async () => ({ batchItemFailures: [] });
    const parts = await jobParts(2);
    const created = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds: parts.callIds,
      metrics: parts.metrics.map(({ id }) => ({ id })),
      webhookUrl: receiverUrl,
    });
    expect(created.status).toBe(201);
    const jobId = created.body.data.id as string;
    expect(await waitForCounts(jobId, 6)).toMatchObject({ status: "PROCESSING" });

    expect(repairsOf(await reconcile(pastStall), jobId)).toEqual([{ orgId: stack.orgId, jobId, repair: "finalize" }]);
    expect(await isMarkedRunning(jobId)).toBe(false);
    const job = await waitFor(
      async () => {
        const current = await getJob(jobId);
        return current.webhook?.status === "delivered" ? current : undefined;
      },
      { timeoutMs: 30_000, what: "the webhook to be delivered" },
    );
    expect(job).toMatchObject({ status: "COMPLETED", completedItems: 6, failedItems: 0 });
    // A second run finds nothing to do, and the webhook went out once.
    expect(repairsOf(await reconcile(2 * pastStall), jobId)).toEqual([]);
    expect(webhookBodies.filter((body) => body.includes(jobId))).toHaveLength(1);
  });

  it("records items still unprocessed after the ceiling as ERROR, so the job ends with honest counts", async () => {
    const parts = await jobParts(3);
    const lostCall = parts.callIds[1] as string;
    evaluator = losingItemsOf(lostCall);
    const created = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds: parts.callIds,
      metrics: parts.metrics.map(({ id }) => ({ id })),
    });
    const jobId = created.body.data.id as string;
    expect(await waitForCounts(jobId, 6)).toMatchObject({ status: "PROCESSING" });

    expect(repairsOf(await reconcile(pastCeiling), jobId)).toEqual([
      { orgId: stack.orgId, jobId, repair: "expire", items: 3 },
    ]);
    const job = await waitForJobEnd(stack.api, jobId);
    expect(job).toMatchObject({ status: "COMPLETED", totalItems: 9, completedItems: 6, failedItems: 3 });
    const values = await expectExactCounts(job);
    const expired = values.filter((v) => v.captureStatus === "ERROR");
    expect(expired.map((v) => v.callId)).toEqual([lostCall, lostCall, lostCall]);
    for (const value of expired) expect(value.errorMessage).toMatch(/Not processed within 86400 seconds/);
    await waitForUnmarked(jobId);
  });

  it("ends a job still running at its expiry EXPIRED, its remaining items not run, and announces it once", async () => {
    const parts = await jobParts(2);
    const lateCall = parts.callIds[1] as string;
    const held: SQSRecord[] = [];
    evaluator = (event, context) => {
      held.push(...event.Records.filter((record) => JSON.parse(record.body).callId === lateCall));
      return losingItemsOf(lateCall)(event, context);
    };
    const body = { callIds: parts.callIds, metrics: parts.metrics.map(({ id }) => ({ id })) };
    const tooSoon = await stack.api("POST", "/v1/metric/collection-jobs", { ...body, expiresInSeconds: 10 });
    expect(tooSoon.status).toBe(400);
    expect(tooSoon.body.error.details).toEqual([expect.objectContaining({ field: "body.expiresInSeconds" })]);
    const created = await stack.api("POST", "/v1/metric/collection-jobs", {
      ...body,
      expiresInSeconds: 60,
      webhookUrl: receiverUrl,
    });
    expect(created.status).toBe(201);
    const jobId = created.body.data.id as string;
    expect(Date.parse(created.body.data.expiresAt) - Date.parse(created.body.data.createdAt)).toBe(60_000);
    await waitForCounts(jobId, 3);
    await waitFor(async () => (held.length === 3 ? true : undefined), { what: "the late call's items to be held" });

    // Before its expiry a run leaves it alone; after it, the job ends EXPIRED, with what it recorded.
    expect(repairsOf(await reconcile(30), jobId)).toEqual([]);
    expect(repairsOf(await reconcile(61), jobId)).toEqual([
      { orgId: stack.orgId, jobId, repair: "deadline", items: 3 },
    ]);
    const expired = await getJob(jobId);
    expect(expired).toMatchObject({
      status: "EXPIRED",
      totalItems: 6,
      completedItems: 3,
      failedItems: 0,
      notRunItems: 3,
    });
    expect(Date.parse(expired.expiredAt)).toBeGreaterThan(Date.parse(expired.createdAt));
    await waitForUnmarked(jobId);

    // The held items, delivered late, call no model and change no count.
    const requestsBefore = stack.anthropic.requests().length;
    expect(await realEvaluator({ Records: held }, {} as Context)).toEqual({ batchItemFailures: [] });
    expect(stack.anthropic.requests().length).toBe(requestsBefore);
    expect(await getJob(jobId)).toMatchObject({ status: "EXPIRED", completedItems: 3, failedItems: 0, notRunItems: 3 });
    expect(repairsOf(await reconcile(2 * pastStall), jobId)).toEqual([]);
    const delivered = await waitFor(
      async () => {
        const current = await getJob(jobId);
        return current.webhook?.status === "delivered" ? current : undefined;
      },
      { timeoutMs: 30_000, what: "the webhook to be delivered" },
    );
    expect(delivered.status).toBe("EXPIRED");
    const announced = webhookBodies.filter((text) => text.includes(jobId));
    expect(announced).toHaveLength(1);
    expect(JSON.parse(announced[0] as string)).toMatchObject({
      type: "collection_job.expired",
      data: { id: jobId, status: "EXPIRED" },
    });
  });

  it("finishes, not expires, a job whose every item was recorded before its expiry", async () => {
    streamRouter = async () => ({ batchItemFailures: [] });
    const parts = await jobParts(1);
    const created = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds: parts.callIds,
      metrics: parts.metrics.map(({ id }) => ({ id })),
      expiresInSeconds: 60,
    });
    const jobId = created.body.data.id as string;
    expect(await waitForCounts(jobId, 3)).toMatchObject({ status: "PROCESSING" });
    expect(repairsOf(await reconcile(61), jobId)).toEqual([
      { orgId: stack.orgId, jobId, repair: "deadline", items: 0 },
    ]);
    const job = await getJob(jobId);
    expect(job).toMatchObject({ status: "COMPLETED", completedItems: 3 });
    expect(job.notRunItems).toBeUndefined();
  });

  it("repairs each job once when two reconcilers run at the same time", async () => {
    const pendingJob = await storeJobWithoutDispatch(await jobParts(2));
    const parts = await jobParts(3);
    evaluator = losingItemsOf(parts.callIds[0] as string);
    const created = await stack.api("POST", "/v1/metric/collection-jobs", {
      callIds: parts.callIds,
      metrics: parts.metrics.map(({ id }) => ({ id })),
    });
    const processingJob = created.body.data.id as string;
    await waitForCounts(processingJob, 6);
    evaluator = realEvaluator;

    const defaults = defaultReconcilerDeps();
    const dispatched: number[] = [];
    const resent: string[] = [];
    const counting: Partial<ReconcilerDeps> = {
      sendDispatch: async (messages) => {
        dispatched.push(...messages.map((m) => m.page));
        await defaults.sendDispatch(messages);
      },
      sendWork: async (items) => {
        resent.push(...items.map((item) => `${item.callId}|${item.metricId}`));
        await defaults.sendWork(items);
      },
    };
    const reports = await Promise.all([reconcile(pastStall, counting), reconcile(pastStall, counting)]);
    const repairs = (jobId: string) => reports.flatMap((report) => repairsOf(report, jobId).map((done) => done.repair));
    expect(repairs(pendingJob)).toEqual(["redispatch"]);
    expect(repairs(processingJob)).toEqual(["resend"]);
    expect(dispatched.sort()).toEqual([0, 1]);
    expect(resent).toHaveLength(3);

    for (const jobId of [pendingJob, processingJob]) {
      const job = await waitForJobEnd(stack.api, jobId);
      expect(job).toMatchObject({ status: "COMPLETED", failedItems: 0 });
      await expectExactCounts(job);
    }
  });
});
