import { describe, expect, it } from "vitest";
import { decodeCursor, encodeCursor, pageQuerySchema } from "../../shared/http/pagination.ts";
import { keys } from "../../shared/keys.ts";
import {
  PAGE_BUDGET_BYTES,
  pagesForEntries,
  parsePageEntry,
  splitIntoPages,
} from "../../shared/pipeline/create-job.ts";
import { isBulkJob, workItemsForPage } from "../../shared/pipeline/dispatch.ts";
import { workMessage } from "../../shared/pipeline/queue.ts";
import { itemBytes } from "../../shared/store/item-budget.ts";

describe("key design", () => {
  it("prefixes every tenant key with its organization", () => {
    const tenantKeys = [
      keys.call("o1", "c"),
      keys.callExternalId("o1", "e"),
      keys.metric("o1", "m"),
      keys.metricVersion("o1", "m", 3),
      keys.metricSlug("o1", "s"),
      keys.job("o1", "j"),
      keys.jobPage("o1", "j", 2),
      keys.itemResult("o1", "j", "c", "m"),
    ];
    for (const key of tenantKeys) expect(key.pk.startsWith("ORG#o1#")).toBe(true);
    expect(keys.callList("o1")).toBe("ORG#o1#CALLS");
  });

  it("reads a value's job, call and metric ids back from its keys", () => {
    const { pk, sk } = keys.itemResult("o1", "job-1", "call-2", "metric-3");
    expect(keys.parseItemResult(pk, sk)).toEqual({ jobId: "job-1", callId: "call-2", metricDefinitionId: "metric-3" });
  });

  it("sorts versions, pages and list entries lexicographically in numeric and time order", () => {
    expect(keys.metricVersion("o", "m", 10).sk > keys.metricVersion("o", "m", 9).sk).toBe(true);
    expect(keys.jobPage("o", "j", 10).sk > keys.jobPage("o", "j", 9).sk).toBe(true);
    expect(keys.listSortKey("2026-11-24T10:00:00.000Z", "a") > keys.listSortKey("2026-11-24T09:59:59.999Z", "z")).toBe(
      true,
    );
  });
});

describe("cursors", () => {
  it("round-trips a key and refuses garbage", () => {
    const key = { gsi1pk: "ORG#o1#CALLS", gsi1sk: "x", pk: "p", sk: "s" };
    expect(decodeCursor(encodeCursor(key)!)).toEqual(key);
    expect(decodeCursor("not-base64-json")).toBeUndefined();
    expect(decodeCursor(encodeCursor({ pk: 1 } as never)!)).toBeUndefined();
  });

  it("reads `after` as a key in the list query, and refuses garbage as a field error", () => {
    const schema = pageQuerySchema(100, 20);
    const key = { gsi1pk: "ORG#o1#CALLS", gsi1sk: "x", pk: "p", sk: "s" };
    expect(schema.parse({ after: encodeCursor(key) })).toEqual({ limit: 20, after: key });
    const refused = schema.safeParse({ after: "garbage" });
    expect(refused.success ? [] : refused.error.issues.map((issue) => issue.path)).toEqual([["after"]]);
  });
});

describe("fan-out", () => {
  it("pages calls so no dispatcher invocation expands more than 5,000 items", () => {
    const calls = Array.from({ length: 10_000 }, (_, i) => `c${i}`);
    const pages = splitIntoPages(calls, 20);
    expect(pages.every((page) => page.length * 20 <= 5_000)).toBe(true);
    expect(pages.flat()).toEqual(calls);
    expect(splitIntoPages(calls, 1)[0]).toHaveLength(2_000);
  });

  it("bounds the pages of explicit entries by items and by size", () => {
    const uuid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;
    // A retry of 5,000 failed items, each on its own call.
    const entries = Array.from({ length: 5_000 }, (_, n) => ({ callId: uuid(n), metricIds: [uuid(n + 1e6)] }));
    const pages = pagesForEntries(entries);
    expect(pages.length).toBeGreaterThan(1);
    for (const page of pages) expect(itemBytes({ callIds: page })).toBeLessThanOrEqual(PAGE_BUDGET_BYTES + 16);
    expect(pages.flat().map(parsePageEntry)).toEqual(entries);
    // Entries of many (short) metric ids are bounded by items: 250 calls × 20 metrics per page.
    const wide = Array.from({ length: 500 }, (_, n) => ({
      callId: uuid(n),
      metricIds: Array.from({ length: 20 }, (_, m) => `m${m}`),
    }));
    expect(pagesForEntries(wide).map((page) => page.length)).toEqual([250, 250]);
  });

  it("places the metrics of one call adjacently", () => {
    const metrics = [
      { id: "m1", version: 1, slug: "a", name: "a" },
      { id: "m2", version: 4, slug: "b", name: "b" },
    ];
    const items = workItemsForPage("o", "j", ["c1", "c2"], metrics);
    expect(items.map((i) => `${i.callId}/${i.metricId}@${i.metricVersion}`)).toEqual([
      "c1/m1@1",
      "c1/m2@4",
      "c2/m1@1",
      "c2/m2@4",
    ]);
  });

  it("marks a backfill's and a policy's work as bulk, a fair-queue group of its own", () => {
    const metrics = [{ id: "m1", version: 1, slug: "a", name: "a" }];
    const work = (triggeredBy: string) =>
      workItemsForPage("o", "j", ["c1"], metrics, isBulkJob({ triggeredBy })).map((item) => workMessage(item));
    expect(work("API")).toEqual([expect.objectContaining({ groupId: "o" })]);
    expect(work("RETRY")).toEqual([expect.objectContaining({ groupId: "o" })]);
    for (const bulk of ["SCHEDULE", "METRIC_POLICY"]) {
      const [message] = work(bulk);
      expect(message).toMatchObject({ groupId: "o:bulk" });
      expect(JSON.parse((message as { body: string }).body)).toMatchObject({ bulk: true });
    }
  });
});
