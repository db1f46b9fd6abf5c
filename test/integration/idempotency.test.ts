import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keys } from "../../shared/keys.ts";
import { claimIdempotencyKey, completeIdempotencyKey, idempotencyRecordKey } from "../../shared/store/idempotency.ts";
import { table } from "../../shared/store/table.ts";
import { builtInMetric, createCalls, createMetrics, sampleCall } from "../support/fixtures.ts";
import { startTestStack, type TestStack } from "../support/stack.ts";

/** A POST with an Idempotency-Key, answering status, body and headers. */
async function post(stack: TestStack, apiKey: string, path: string, body: unknown, idempotencyKey?: string) {
  const response = await fetch(`${stack.baseUrl}${path}`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${apiKey}`,
      "content-type": "application/json",
      ...(idempotencyKey === undefined ? {} : { "idempotency-key": idempotencyKey }),
    },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as any, headers: response.headers };
}

describe("Idempotency-Key on the POSTs that create something", () => {
  let stack: TestStack;
  let callIds: string[];
  let metricId: string;
  beforeAll(async () => {
    stack = await startTestStack();
    callIds = await createCalls(stack.api, 2);
    const [metric] = await createMetrics(stack.api, [builtInMetric("idem-duration", { kind: "CALL_DURATION" })]);
    metricId = metric?.id ?? "";
  });
  afterAll(() => stack?.stop());

  const jobBody = (tag: string) => ({ callIds, metrics: [{ id: metricId }], metadata: { tag } });

  async function jobsTagged(tag: string) {
    const listed = await stack.api("GET", "/v1/metric/collection-jobs?limit=50");
    return listed.body.data.filter((job: any) => job.metadata.tag === tag);
  }

  it("answers a repeated request with the first response and creates one job", async () => {
    const first = await post(stack, stack.apiKey, "/v1/metric/collection-jobs", jobBody("repeat"), "key-repeat");
    const second = await post(stack, stack.apiKey, "/v1/metric/collection-jobs", jobBody("repeat"), "key-repeat");
    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    expect(second.body.data.id).toBe(first.body.data.id);
    expect(first.headers.get("idempotent-replayed")).toBeNull();
    expect(second.headers.get("idempotent-replayed")).toBe("true");
    expect(await jobsTagged("repeat")).toHaveLength(1);
  });

  it("creates one job when the same key is sent twice at once, and answers both with it", async () => {
    const [a, b] = await Promise.all([
      post(stack, stack.apiKey, "/v1/metric/collection-jobs", jobBody("at-once"), "key-at-once"),
      post(stack, stack.apiKey, "/v1/metric/collection-jobs", jobBody("at-once"), "key-at-once"),
    ]);
    expect([a.status, b.status]).toEqual([201, 201]);
    expect(a.body.data.id).toBe(b.body.data.id);
    expect(await jobsTagged("at-once")).toHaveLength(1);
  });

  it("refuses the same key with another body (409) and creates nothing", async () => {
    await post(stack, stack.apiKey, "/v1/metric/collection-jobs", jobBody("first-body"), "key-reused");
    const reused = await post(stack, stack.apiKey, "/v1/metric/collection-jobs", jobBody("other-body"), "key-reused");
    expect(reused.status).toBe(409);
    expect(reused.body.error.code).toBe("idempotency_key_reused");
    expect(await jobsTagged("other-body")).toHaveLength(0);
    // The same key on another route is another request too.
    const elsewhere = await post(stack, stack.apiKey, "/v1/call", sampleCall({ externalId: undefined }), "key-reused");
    expect(elsewhere.status).toBe(409);
  });

  it("keeps each organization's keys apart", async () => {
    const other = await stack.newOrganization("Idempotency neighbour");
    const call = sampleCall({ externalId: "idem-shared" });
    const mine = await post(stack, stack.apiKey, "/v1/call", call, "key-shared");
    const theirs = await post(stack, other.apiKey, "/v1/call", call, "key-shared");
    expect([mine.status, theirs.status]).toEqual([201, 201]);
    expect(theirs.body.data.id).not.toBe(mine.body.data.id);
    expect(theirs.headers.get("idempotent-replayed")).toBeNull();
  });

  it("releases the key of a request that failed, so a corrected one can use it", async () => {
    const failed = await post(
      stack,
      stack.apiKey,
      "/v1/metric/collection-jobs",
      { ...jobBody("after-error"), callIds: ["no-such-call"] },
      "key-after-error",
    );
    expect(failed.status).toBeGreaterThanOrEqual(400);
    const corrected = await post(
      stack,
      stack.apiKey,
      "/v1/metric/collection-jobs",
      jobBody("after-error"),
      "key-after-error",
    );
    expect(corrected.status).toBe(201);
    expect(corrected.headers.get("idempotent-replayed")).toBeNull();
  });

  it("forgets a key after 24 hours", async () => {
    const body = sampleCall({ externalId: undefined });
    const first = await post(stack, stack.apiKey, "/v1/call", body, "key-expiring");
    // DynamoDB's TTL deletes expired records within days: an expired one is treated as absent.
    await table.update({
      Key: idempotencyRecordKey(stack.orgId, "key-expiring"),
      UpdateExpression: "SET expiresAt = :past",
      ExpressionAttributeValues: { ":past": Math.floor(Date.now() / 1000) - 1 },
    });
    const later = await post(stack, stack.apiKey, "/v1/call", body, "key-expiring");
    expect(later.status).toBe(201);
    expect(later.body.data.id).not.toBe(first.body.data.id);
    expect(later.headers.get("idempotent-replayed")).toBeNull();
  });

  it("answers 400 for a key longer than 255 characters or with control characters", async () => {
    for (const key of ["k".repeat(256), "tab\tinside"]) {
      const response = await post(stack, stack.apiKey, "/v1/call", sampleCall({ externalId: undefined }), key);
      expect(response.status).toBe(400);
      expect(response.body.error.message).toMatch(/Idempotency-Key/);
    }
  });

  it("scopes its records to the organization's keys", () => {
    expect(idempotencyRecordKey("org-a", "k").pk.startsWith(keys.organization("org-a").pk)).toBe(true);
  });

  it("lets a repeat take over a key whose first request died before answering, once its lock has expired", async () => {
    const now = Date.now();
    expect(await claimIdempotencyKey(stack.orgId, "key-died", "same", 30_000, now)).toMatchObject({ kind: "claimed" });
    expect(await claimIdempotencyKey(stack.orgId, "key-died", "same", 30_000, now + 1_000)).toEqual({
      kind: "in_progress",
    });
    expect(await claimIdempotencyKey(stack.orgId, "key-died", "other", 30_000, now + 31_000)).toEqual({
      kind: "mismatch",
    });
    expect(await claimIdempotencyKey(stack.orgId, "key-died", "same", 30_000, now + 31_000)).toMatchObject({
      kind: "claimed",
    });
  });

  it("keeps a response within the record's budget, and says so when it could not keep one", async () => {
    const small = JSON.stringify({ data: { id: "x".repeat(100_000) } });
    await claimIdempotencyKey(stack.orgId, "key-small", "f", 30_000);
    await completeIdempotencyKey(stack.orgId, "key-small", "f", { statusCode: 201, body: small });
    expect(await claimIdempotencyKey(stack.orgId, "key-small", "f", 30_000)).toEqual({
      kind: "completed",
      response: { statusCode: 201, body: small },
    });
    // Random text does not compress: 600 KB of it cannot be kept in one item.
    const large = JSON.stringify({ data: randomBytes(450_000).toString("base64") });
    await claimIdempotencyKey(stack.orgId, "key-large", "f", 30_000);
    await completeIdempotencyKey(stack.orgId, "key-large", "f", { statusCode: 201, body: large });
    expect(await claimIdempotencyKey(stack.orgId, "key-large", "f", 30_000)).toEqual({
      kind: "completed",
      response: { statusCode: 201 },
    });
  });
});
