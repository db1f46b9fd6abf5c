/**
 * Rollup deltas on DynamoDB Local: each delta reaches the rollups exactly once whether it is
 * delivered twice, applied concurrently, retried after a crash mid-batch, or left to the
 * sweeper. The stream consumer and the schedule are switched off here so the test decides
 * who applies what.
 */
import { BatchWriteCommand, ScanCommand, type TransactWriteCommandInput } from "@aws-sdk/lib-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { handler as sweep } from "../../functions/workers/rollup-sweeper.ts";
import { applyStreamedDeltas } from "../../shared/analytics/delta-stream.ts";
import {
  applyRollupDeltas,
  deltaItem,
  pendingDeltaCount,
  type RollupDelta,
  SWEEP_AFTER_MS,
  staleDeltas,
  toDelta,
} from "../../shared/analytics/deltas.ts";
import { type RollupInput, rollupKeyPrefix } from "../../shared/analytics/rollup.ts";
import { dynamo } from "../../shared/aws.ts";
import { config } from "../../shared/config.ts";
import { lambdaContext } from "../support/lambda.ts";
import { startTestStack, type TestStack } from "../support/stack.ts";

describe("rollup deltas", () => {
  let stack: TestStack;

  beforeAll(async () => {
    const idle = async () => ({});
    stack = await startTestStack({ runtime: { handlerOverrides: { "rollup-applier": idle, "rollup-sweeper": idle } } });
  });
  afterAll(() => stack?.stop());

  /** `count` deltas of ten values each, spread over label sets, metrics and hours (many rollup items). */
  function makeDeltas(orgId: string, count: number, createdAt = new Date(), batch = "b") {
    const inputs: RollupInput[] = [];
    const items = Array.from({ length: count }, (_, d) => {
      const group = Array.from({ length: 10 }, (_, v) => {
        const input: RollupInput = {
          orgId,
          slug: v % 2 ? "talk-ratio" : "resolved",
          outputType: v % 2 ? "NUMERIC" : "BOOLEAN",
          histogram: v % 2 === 1,
          labels: { agentId: `agent-${(d + v) % 3}`, region: v % 3 ? "EU" : "US" },
          at: new Date(Date.UTC(2026, 10, 1) + (d * 10 + v) * 17 * 60_000).toISOString(),
          numeric: v % 2 ? d + v : (d + v) % 2,
        };
        inputs.push(input);
        return input;
      });
      return deltaItem(
        orgId,
        group.map((_, v) => `${batch}-value-${d}-${v}`),
        group,
        createdAt,
      );
    });
    return { items, inputs, deltas: items.map(toDelta) };
  }

  async function put(items: Record<string, unknown>[]) {
    for (let i = 0; i < items.length; i += 25) {
      await dynamo().send(
        new BatchWriteCommand({
          RequestItems: { [config().tableName]: items.slice(i, i + 25).map((Item) => ({ PutRequest: { Item } })) },
        }),
      );
    }
  }

  type TransactItems = NonNullable<TransactWriteCommandInput["TransactItems"]>;
  /**
   * Watches (and can fail) the transactions the shared client sends, as a crash or an outage
   * at that point would: `fail` returning true makes the call throw before it reaches DynamoDB.
   */
  function watchTransactions(fail: (items: TransactItems) => boolean = () => false) {
    const sent: TransactItems[] = [];
    const name = `watch-${Math.random()}`;
    dynamo().middlewareStack.add(
      (next) => async (args) => {
        const items = (args.input as TransactWriteCommandInput).TransactItems;
        if (items) {
          if (fail(items)) throw new Error("simulated crash");
          sent.push(items);
        }
        return next(args);
      },
      { step: "initialize", name },
    );
    return { sent, stop: () => dynamo().middlewareStack.remove(name) };
  }
  const updatesIn = (transactions: TransactItems[]) =>
    transactions.reduce((n, items) => n + items.filter((action) => action.Update).length, 0);
  /** What the sweeper reads once every pending delta, merged ones included, is old enough. */
  const allPending = async (orgId: string) =>
    (await staleDeltas(new Date(Date.now() + SWEEP_AFTER_MS + 60_000))).filter((delta) => delta.orgId === orgId);

  /** Every rollup item of the organization, read back from the table. */
  async function rollupItemsOf(orgId: string): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await dynamo().send(
        new ScanCommand({
          TableName: config().tableName,
          FilterExpression: "begins_with(pk, :prefix)",
          ExpressionAttributeValues: { ":prefix": rollupKeyPrefix(orgId) },
          ExclusiveStartKey: startKey,
          ConsistentRead: true,
        }),
      );
      items.push(...(page.Items ?? []));
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return items;
  }

  /** Per metric and tier (`resolved 1d`): the counts, sums and histogram entries of all its buckets. */
  async function rollupTotalsOf(orgId: string) {
    const totals: Record<string, { count: number; sum: number; histogram: number }> = {};
    for (const item of await rollupItemsOf(orgId)) {
      const [slug, , tier] = String(item.pk).slice(rollupKeyPrefix(orgId).length).split("#");
      const total = totals[`${slug} ${tier}`] ?? { count: 0, sum: 0, histogram: 0 };
      totals[`${slug} ${tier}`] = total;
      for (const [attribute, value] of Object.entries(item)) {
        if (typeof value !== "number") continue;
        const field = attribute.split("@")[0] as string;
        if (field === "count") total.count += value;
        else if (field === "sum") total.sum += value;
        else if (/^h[pnz]/.test(field)) total.histogram += value;
      }
    }
    return totals;
  }

  /**
   * The rollups hold what `makeDeltas(orgId, deltas)` adds, once, worked out by hand: each
   * delta d has 5 "resolved" values (v even, value (d + v) % 2 = d % 2, so 5 per odd d) and
   * 5 "talk-ratio" values (v odd, value d + v, so 5d + 25 per delta). Each tier holds every
   * value once; "resolved" (no histogram) keeps no hour items, its hours being in 5m items.
   */
  const expectedTotals: Record<number, { resolved: number; talkRatio: number }> = {
    12: { resolved: 30, talkRatio: 630 }, // 6 odd d × 5; 5 × 66 + 12 × 25
    30: { resolved: 75, talkRatio: 2925 }, // 15 odd d × 5; 5 × 435 + 30 × 25
    40: { resolved: 100, talkRatio: 4900 }, // 20 odd d × 5; 5 × 780 + 40 × 25
  };

  async function expectRollupsOf(orgId: string, deltas: number) {
    const expected = expectedTotals[deltas];
    if (!expected) throw new Error(`No hand-computed totals for ${deltas} deltas`);
    const values = deltas * 5;
    const resolved = { count: values, sum: expected.resolved, histogram: 0 };
    const talkRatio = { count: values, sum: expected.talkRatio, histogram: values };
    expect(await rollupTotalsOf(orgId)).toEqual({
      "resolved 5m": resolved,
      "resolved 1d": resolved,
      "resolved 10d": resolved,
      "talk-ratio 5m": talkRatio,
      "talk-ratio 1h": talkRatio,
      "talk-ratio 1d": talkRatio,
      "talk-ratio 10d": talkRatio,
    });
  }

  it("applies each delta once: twice delivered, a crash mid-batch then the retry, and concurrent appliers", async () => {
    const { orgId } = await stack.newOrganization("deltas");
    const { items, deltas } = makeDeltas(orgId, 30);
    await put(items);

    // A consumer crashed after its first chunks: a third of the deltas are applied.
    expect(await applyRollupDeltas(deltas.slice(0, 10))).toEqual({ applied: 10, alreadyApplied: 0 });
    // The batch comes back whole, and a second consumer gets it at the same time.
    const [first, second] = await Promise.all([applyRollupDeltas(deltas), applyRollupDeltas(deltas)]);
    expect(first.applied + second.applied).toBe(20);
    expect(first.alreadyApplied + second.alreadyApplied).toBe(40);
    // Delivered yet again, through the stream handler: nothing changes.
    const records = items.map((item, index) => ({
      eventName: "INSERT" as const,
      dynamodb: { SequenceNumber: String(index + 1), NewImage: marshall(item, { removeUndefinedValues: true }) },
    }));
    expect(await applyStreamedDeltas(records as never)).toEqual({ batchItemFailures: [] });

    await expectRollupsOf(orgId, 30);
    // More items than one transaction holds.
    expect((await rollupItemsOf(orgId)).length).toBeGreaterThan(100);
    expect(await pendingDeltaCount()).toBe(0);
  });

  it("leaves nothing behind: the sweeper applies deltas the stream consumer never did", async () => {
    const { orgId } = await stack.newOrganization("sweeper");
    const old = new Date(Date.now() - 10 * 60_000);
    const { items } = makeDeltas(orgId, 12, old);
    const fresh = makeDeltas(orgId, 1, new Date(), "fresh");
    await put([...items, ...fresh.items]);

    const stale: RollupDelta[] = await staleDeltas();
    expect(stale.map((delta) => delta.key.pk).sort()).toEqual(items.map((item) => String(item.pk)).sort());
    // Only the stale ones: the fresh delta is still the stream consumer's to apply.
    expect(await sweep({}, lambdaContext())).toEqual({ applied: 12, alreadyApplied: 0, lateValuesRemoved: 0 });
    expect(await pendingDeltaCount()).toBe(1);
    expect(await sweep({}, lambdaContext())).toEqual({ applied: 0, alreadyApplied: 0, lateValuesRemoved: 0 });
    await expectRollupsOf(orgId, 12);
  });

  it("merges deltas first: one update per rollup item, however many deltas touch it", async () => {
    const { orgId } = await stack.newOrganization("merging");
    const { items, inputs, deltas } = makeDeltas(orgId, 40);
    await put(items);
    const watch = watchTransactions();
    try {
      expect(await applyRollupDeltas(deltas)).toEqual({ applied: 40, alreadyApplied: 0 });
    } finally {
      watch.stop();
    }
    // 400 values × 4 resolutions would be 1,600 updates, and deleting deltas together with
    // their updates in 100-action transactions would merge only two deltas at a time.
    const distinctItems = (await rollupItemsOf(orgId)).length;
    expect(distinctItems).toBeLessThan(inputs.length * 4 * 0.6); // the hours and days these values share
    expect(updatesIn(watch.sent)).toBe(distinctItems);
    for (const transaction of watch.sent) expect(transaction.length).toBeLessThanOrEqual(100);
    await expectRollupsOf(orgId, 40);
    expect(await allPending(orgId)).toEqual([]);
  });

  it("a crash between merging and applying leaves merged deltas that are applied once", async () => {
    const { orgId } = await stack.newOrganization("merge-crash");
    const { items, deltas } = makeDeltas(orgId, 40);
    await put(items);
    // Every transaction with updates fails: the merge commits, nothing is applied.
    const watch = watchTransactions((transaction) => transaction.some((action) => action.Update));
    try {
      await expect(applyRollupDeltas(deltas)).rejects.toThrow("simulated crash");
    } finally {
      watch.stop();
    }
    const merged = await allPending(orgId);
    expect(merged.length).toBeGreaterThan(0);
    expect(merged.every((delta) => delta.increments && delta.inputs.length === 0)).toBe(true);
    // The batch is redelivered: its deltas are gone (merged), so it adds nothing.
    expect(await applyRollupDeltas(deltas)).toEqual({ applied: 0, alreadyApplied: 40 });

    // The sweeper finds the merged deltas; two sweeps at once still apply each once.
    const [first, second] = await Promise.all([
      applyRollupDeltas(await allPending(orgId)),
      applyRollupDeltas(await allPending(orgId)),
    ]);
    expect(first.applied + second.applied).toBe(merged.length);
    await expectRollupsOf(orgId, 40);
    expect(await allPending(orgId)).toEqual([]);
  });
});
