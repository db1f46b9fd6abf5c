/** The SDK against a real test stack: typed calls, pagination, createAndWait, errors. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiError, Client, type JobMetricValues } from "../../sdk/src/index.ts";
import { builtInMetric, llmMetric, sampleCall } from "../support/fixtures.ts";
import { startTestStack, type TestStack } from "../support/stack.ts";

describe("SDK on the local stack", () => {
  let stack: TestStack;
  let client: Client;
  beforeAll(async () => {
    stack = await startTestStack();
    client = new Client({ baseURL: stack.baseUrl, apiKey: stack.apiKey });
  });
  afterAll(() => stack?.stop());

  it("creates calls and metrics, runs a job with progress and reads its values", async () => {
    for (let i = 0; i < 5; i++) await client.calls.create(sampleCall({ externalId: `sdk-${i}` }, i));
    const ids: string[] = [];
    for await (const call of client.calls.iterate({ limit: 2 })) ids.push(call.id);
    expect(ids).toHaveLength(5);
    // Your own id of a call finds it; an id never given finds nothing.
    expect((await client.calls.byExternalId("sdk-3"))?.externalId).toBe("sdk-3");
    expect(await client.calls.byExternalId("sdk-never")).toBeUndefined();
    await client.metrics.create(builtInMetric("sdk-turns", { kind: "TURN_COUNT" }, "COUNT") as never);
    await client.metrics.create(llmMetric("sdk-refund", "BOOLEAN", 'Did the customer ask for a "refund"?') as never);
    expect((await client.metrics.get("sdk-refund")).outputType).toBe("BOOLEAN");

    const seen: number[] = [];
    const job = await client.jobs.createAndWait(
      { callIds: ids, metrics: [{ id: "sdk-turns" }, { id: "sdk-refund" }], metadata: { source: "sdk" } },
      { intervalMs: 100, onProgress: (j) => seen.push(j.completedItems + j.failedItems) },
    );
    expect(job).toMatchObject({ status: "COMPLETED", totalItems: 10, completedItems: 10, failedItems: 0 });
    expect(job.usage?.inputTokens).toBeGreaterThan(0);
    expect(seen.at(-1)).toBe(10);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));

    const groups: JobMetricValues[] = [];
    for await (const group of client.jobs.values(job.id, { limit: 3 })) groups.push(group);
    const values = groups.flatMap((group) => group.values);
    expect(values).toHaveLength(10);
    expect(
      values.find((v) => v.metricDefinitionId === groups.find((g) => g.slug === "sdk-refund")?.metricDefinitionId)
        ?.segment?.text,
    ).toContain("refund");

    const listed = await client.jobs.list({ status: "COMPLETED" });
    expect(listed.data.map((j) => j.id)).toContain(job.id);
    const result = await client.playground.run({ callId: ids[0] as string, metric: { id: "sdk-turns" } });
    expect(result.value).toBe(4);
  });

  it("throws typed errors with status and body", async () => {
    const error = await client.jobs.get("no-such-job").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 404, code: "not_found" });
    const invalid = await client.jobs.create({ callIds: [], metrics: [] }).catch((e: unknown) => e);
    expect(invalid).toMatchObject({ status: 400, code: "validation_error" });
    expect((invalid as ApiError).details).toEqual(
      expect.arrayContaining([expect.objectContaining({ field: "body.callIds" })]),
    );
    const anonymous = new Client({ baseURL: stack.baseUrl, apiKey: "mcj_wrong_key_0123456789" });
    await expect(anonymous.calls.list()).rejects.toMatchObject({ status: 401 });
    const spec = await anonymous.request("getOpenApi", {});
    expect(spec.openapi).toBe("3.1.0");
  });

  it("creates one job when the answer to its POST is lost and the SDK sends it again", async () => {
    const [callId] = await Promise.all([client.calls.create(sampleCall({ externalId: "sdk-lost-answer" }))]);
    await client.metrics.create(builtInMetric("sdk-lost-turns", { kind: "TURN_COUNT" }, "COUNT") as never);
    let posts = 0;
    const losing = new Client({
      baseURL: stack.baseUrl,
      apiKey: stack.apiKey,
      fetch: async (input, init) => {
        const response = await fetch(input, init);
        // The server created the job; the client never hears of it.
        if (init?.method === "POST" && posts++ === 0) throw new TypeError("socket hang up");
        return response;
      },
    });
    const job = await losing.jobs.create({
      callIds: [callId?.id as string],
      metrics: [{ id: "sdk-lost-turns" }],
      metadata: { source: "sdk-lost-answer" },
    });
    expect(posts).toBe(2);
    const jobs = (await client.jobs.list({ limit: 50 })).data.filter((j) => j.metadata.source === "sdk-lost-answer");
    expect(jobs.map((j) => j.id)).toEqual([job.id]);
  });
});
