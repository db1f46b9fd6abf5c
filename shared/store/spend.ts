/**
 * An organization's LLM spend per calendar month (UTC), for its monthly budget: added in the
 * same transaction that adds a cost to a job (recorded values, billed attempts), so it counts
 * each answer exactly once, and by each playground run. Spread over shards chosen by job, so
 * jobs running at once rarely write the same item; read by summing the month's shards.
 */
import { createHash } from "node:crypto";
import { keys } from "../keys.ts";
import type { TableTransactItem } from "./table.ts";
import { table } from "./table.ts";

const SPEND_SHARDS = 16;
/** Months are kept a little over a year, for reports. */
const SPEND_RETENTION_SECONDS = 400 * 24 * 3600;

export const spendMonth = (at = new Date()) => at.toISOString().slice(0, 7);

const shardOf = (source: string) => createHash("sha256").update(source).digest().readUInt16BE(0) % SPEND_SHARDS;

/** The transaction item that adds `micros` (millionths of a dollar) to this month's spend; none for 0. */
export function spendUpdate(orgId: string, source: string, micros: number): TableTransactItem[] {
  if (micros <= 0) return [];
  return [
    {
      Update: {
        Key: keys.spendShard(orgId, spendMonth(), shardOf(source)),
        UpdateExpression: "ADD costUsd :cost SET expiresAt = if_not_exists(expiresAt, :expiresAt)",
        ExpressionAttributeValues: {
          ":cost": micros / 1_000_000,
          ":expiresAt": Math.floor(Date.now() / 1000) + SPEND_RETENTION_SECONDS,
        },
      },
    },
  ];
}

/** Adds a cost no job carries (a playground run). */
export async function addSpend(orgId: string, source: string, costUsd: number): Promise<void> {
  const [update] = spendUpdate(orgId, source, Math.round(costUsd * 1_000_000));
  if (update?.Update) await table.update(update.Update);
}

/** What the organization has spent this month, in USD. */
export async function monthSpend(orgId: string, month = spendMonth()): Promise<number> {
  const { Items = [] } = await table.query({
    KeyConditionExpression: "pk = :pk",
    ExpressionAttributeValues: { ":pk": keys.spendShard(orgId, month, 0).pk },
    ConsistentRead: true,
  });
  const micros = Items.reduce((sum, item) => sum + Math.round(Number(item.costUsd ?? 0) * 1_000_000), 0);
  return micros / 1_000_000;
}
