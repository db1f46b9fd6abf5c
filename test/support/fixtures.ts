/** Builders for test data: calls, built-in metric definitions, and seeding through the API. */

import { expect } from "vitest";
import type { RecordedRequest } from "../../infra/local/fake-anthropic.ts";
import type { CreateCallInput } from "../../shared/schemas/call.ts";
import { policyJobs, type TestStack, waitForJobEnd } from "./stack.ts";

type Api = TestStack["api"];

export function sampleCall(overrides: Partial<CreateCallInput> = {}, index = 0): CreateCallInput {
  const start = Date.UTC(2026, 10, 1, 9, 0, index);
  return {
    agentId: "agent-support",
    environmentId: "production",
    callDirection: "INBOUND",
    interfaceType: "PHONE",
    startedAt: new Date(start).toISOString(),
    endedAt: new Date(start + 60_000).toISOString(),
    durationMs: 60_000,
    properties: { region: index % 2 ? "EU" : "US" },
    transcript: [
      { role: "AGENT", text: "Thanks for calling, how can I help?", startOffsetMs: 0, endOffsetMs: 3000 },
      { role: "CUSTOMER", text: "I need a refund, sorry to bother you.", startOffsetMs: 3500, endOffsetMs: 7000 },
      {
        role: "AGENT",
        text: `Sorry to hear that, call ${index}. Let me check.`,
        startOffsetMs: 7600,
        endOffsetMs: 11000,
      },
      { role: "CUSTOMER", text: "Thank you.", startOffsetMs: 10500, endOffsetMs: 12000 },
    ],
    ...overrides,
  };
}

export const builtInMetric = (slug: string, builtIn: Record<string, unknown>, outputType = "NUMERIC") => ({
  slug,
  name: slug.replaceAll("-", " "),
  calculationType: "BUILT_IN",
  outputType,
  builtIn,
});

export const llmMetric = (slug: string, outputType: string, llmPrompt: string, extra: object = {}) => ({
  slug,
  name: slug,
  calculationType: "LLM_JUDGE",
  outputType,
  llmPrompt,
  ...extra,
});

export const standardMetrics = [
  builtInMetric("call-duration", { kind: "CALL_DURATION" }),
  builtInMetric("turn-count", { kind: "TURN_COUNT" }, "COUNT"),
  builtInMetric("apologies", { kind: "KEYWORD_MATCH_COUNT", keywords: ["sorry"] }, "COUNT"),
];

export async function createCalls(api: Api, count: number, overrides: Partial<CreateCallInput> = {}) {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const { status, body } = await api("POST", "/v1/call", sampleCall(overrides, i));
    if (status !== 201) throw new Error(`create call: ${status} ${JSON.stringify(body)}`);
    ids.push(body.data.id);
  }
  return ids;
}

export async function createMetrics(api: Api, definitions: object[]) {
  const created = [];
  for (const definition of definitions) {
    const { status, body } = await api("POST", "/v1/metric/definitions", definition);
    if (status !== 201) throw new Error(`create metric: ${status} ${JSON.stringify(body)}`);
    created.push(body.data);
  }
  return created as { id: string; slug: string; version: number }[];
}

/** All values of a job, following pagination. */
export async function jobValues(api: Api, jobId: string, status = "all") {
  const values: any[] = [];
  let after: string | null = null;
  do {
    const query: string = `status=${status}&limit=1000${after ? `&after=${after}` : ""}`;
    const { body } = await api("GET", `/v1/metric/collection-jobs/${jobId}/metric-values?${query}`);
    for (const group of body.data) values.push(...group.values.map((v: object) => ({ ...v, slug: group.slug })));
    after = body.pagination.nextCursor;
  } while (after);
  return values;
}

/** Creates calls and fresh definitions (slugs made unique with `tag`), then a job over them; returns its id. */
export async function createJob(api: Api, calls: number, metrics: { slug: string }[], tag: string) {
  const callIds = await createCalls(api, calls);
  const created = await createMetrics(
    api,
    metrics.map((metric) => ({ ...metric, slug: `${metric.slug}-${tag}` })),
  );
  const { status, body } = await api("POST", "/v1/metric/collection-jobs", {
    callIds,
    metrics: created.map((m) => ({ id: m.id })),
  });
  if (status !== 201) throw new Error(`create job: ${status} ${JSON.stringify(body)}`);
  return { jobId: body.data.id as string, callIds, metrics: created };
}

/**
 * A finished job's counters against its stored values, item by item: one value per item,
 * none twice, and completed/failed counts that match their capture statuses.
 */
export async function expectCountsMatchValues(api: Api, job: any) {
  const { expect } = await import("vitest");
  const values = await jobValues(api, job.id);
  const keys = values.map((v) => `${v.callId}|${v.metricDefinitionId}`);
  expect(new Set(keys).size).toBe(values.length);
  expect(values).toHaveLength(job.totalItems);
  expect(job.completedItems + job.failedItems).toBe(job.totalItems);
  expect(job.completedItems).toBe(values.filter((v) => v.captureStatus !== "ERROR").length);
  expect(job.failedItems).toBe(values.filter((v) => v.captureStatus === "ERROR").length);
  return values;
}

/** What the fake Anthropic server billed for `served` requests, in a job's usage fields. */
export function billedUsage(served: readonly RecordedRequest[]) {
  const sum = (pick: (usage: NonNullable<RecordedRequest["usage"]>) => number | undefined) =>
    served.reduce((total, r) => total + (r.usage ? (pick(r.usage) ?? 0) : 0), 0);
  return {
    inputTokens: sum((u) => u.input_tokens),
    outputTokens: sum((u) => u.output_tokens),
    cacheCreationInputTokens: sum((u) => u.cache_creation_input_tokens),
    cacheReadInputTokens: sum((u) => u.cache_read_input_tokens),
    thinkingTokens: sum((u) => u.output_tokens_details?.thinking_tokens),
  };
}

/** A policy that judges `agentId`'s new calls by their turn count (a built-in metric `slug`); its id. */
export async function turnCountPolicy(api: Api, slug: string, agentId: string): Promise<string> {
  await createMetrics(api, [builtInMetric(slug, { kind: "TURN_COUNT" }, "COUNT")]);
  const policy = await api("POST", "/v1/metric/policies", {
    name: `${agentId} calls`,
    metrics: [{ id: slug }],
    conditions: [[{ conditionType: "AGENT", conditionOperator: "EQUALS", conditionValue: agentId }]],
  });
  expect(policy.status).toBe(201);
  return policy.body.data.id;
}

/** The policy started one job, for the one call, which completed with the call's turn count. */
export async function expectJudgedOnceByPolicy(api: Api, policyId: string, callId: string, turns: number) {
  const jobs = await policyJobs(api, policyId);
  expect(jobs).toHaveLength(1);
  const job = await waitForJobEnd(api, jobs[0].id);
  expect(job).toMatchObject({ status: "COMPLETED", callCount: 1, completedItems: 1 });
  const values = await api("GET", `/v1/call/${callId}/metrics`);
  expect(values.body.data[0].values[0]).toMatchObject({ value: turns, captureStatus: "SUCCESS" });
}
