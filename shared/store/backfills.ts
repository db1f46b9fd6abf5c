/** Scheduled backfills: CRUD (soft delete) and the due-run index. */
import { randomUUID } from "node:crypto";
import { nextRun, parseSchedule } from "../backfills/schedule.ts";
import { conflict, notFound, parseOrInvalid } from "../errors.ts";
import { keys } from "../keys.ts";
import { type Backfill, type CreateBackfillInput, createBackfillSchema } from "../schemas/backfill.ts";
import { assertWebhookUrl } from "../webhooks/url-safety.ts";
import { resolveMetricRefs } from "./metrics.ts";
import { type PageKey, queryAll, queryPage } from "./query.ts";
import { conditionHeld, table } from "./table.ts";

type Item = Record<string, unknown>;
const storageFields = new Set(["pk", "sk", "entity", "gsi1pk", "gsi1sk", "orgId", "runningUntil"]);
const toBackfill = (item: Item): Backfill => {
  const backfill = Object.fromEntries(
    Object.entries(item).filter(([k]) => !storageFields.has(k)),
  ) as unknown as Backfill;
  // Backfills stored before LLM modes existed run their jobs in batch mode, the default.
  backfill.llmMode ??= "batch";
  return backfill;
};

async function validated(orgId: string, input: CreateBackfillInput): Promise<CreateBackfillInput> {
  if (input.webhookUrl) await assertWebhookUrl(input.webhookUrl);
  return { ...input, metrics: await resolveMetricRefs(orgId, input.metrics) };
}

export const deleteDueMarker = (orgId: string, backfillId: string): Promise<void> =>
  table.delete({ Key: keys.backfillDue(orgId, backfillId) });

/** Writes (or removes) the due marker so the scheduled runner finds the next run. */
export async function scheduleNextRun(
  orgId: string,
  backfill: Backfill,
  after = new Date(),
): Promise<string | undefined> {
  const next = backfill.status === "ACTIVE" ? nextRun(parseSchedule(backfill.schedule), after) : undefined;
  if (!next) {
    await deleteDueMarker(orgId, backfill.id);
    return undefined;
  }
  const nextRunAt = next.toISOString();
  await table.put({
    Item: {
      ...keys.backfillDue(orgId, backfill.id),
      entity: "BackfillDue",
      gsi1pk: keys.dueBackfills,
      gsi1sk: `${nextRunAt}#${orgId}#${backfill.id}`,
      orgId,
      backfillId: backfill.id,
    },
  });
  await table.update({
    Key: keys.backfill(orgId, backfill.id),
    UpdateExpression: "SET nextRunAt = :next",
    ConditionExpression: "attribute_exists(pk)",
    ExpressionAttributeValues: { ":next": nextRunAt },
  });
  return nextRunAt;
}

/**
 * Creates the backfill (`replace` false) or replaces a live one — only while no run holds
 * its lock and no run started a job since it was read (`backfill.lastJobId` is current), so
 * an edit can neither drop a run's lock nor hide the job a later run must wait for.
 */
function putBackfill(orgId: string, backfill: Backfill, replace: boolean) {
  return table.put({
    Item: {
      ...keys.backfill(orgId, backfill.id),
      entity: "Backfill",
      gsi1pk: keys.backfillList(orgId),
      gsi1sk: keys.listSortKey(backfill.createdAt, backfill.id),
      orgId,
      ...backfill,
    },
    ...(replace
      ? {
          ConditionExpression: `attribute_exists(pk) AND #status <> :deleted AND (attribute_not_exists(runningUntil) OR runningUntil < :now) AND ${
            backfill.lastJobId ? "lastJobId = :seen" : "attribute_not_exists(lastJobId)"
          }`,
          ExpressionAttributeNames: { "#status": "status" },
          ExpressionAttributeValues: {
            ":deleted": "DELETED",
            ":now": new Date().toISOString(),
            ...(backfill.lastJobId ? { ":seen": backfill.lastJobId } : {}),
          },
        }
      : { ConditionExpression: "attribute_not_exists(pk)" }),
  });
}

export async function createBackfill(orgId: string, input: CreateBackfillInput): Promise<Backfill> {
  const now = new Date().toISOString();
  const backfill: Backfill = { ...(await validated(orgId, input)), id: randomUUID(), createdAt: now, updatedAt: now };
  await putBackfill(orgId, backfill, false);
  const nextRunAt = await scheduleNextRun(orgId, backfill);
  return { ...backfill, nextRunAt };
}

export async function getBackfill(orgId: string, backfillId: string): Promise<Backfill | undefined> {
  const item = await table.get(keys.backfill(orgId, backfillId), { ConsistentRead: true });
  return item && item.status !== "DELETED" ? toBackfill(item) : undefined;
}

export const listBackfills = (orgId: string, options: { limit: number; after?: PageKey }) =>
  queryPage(
    {
      partition: ["gsi1pk", keys.backfillList(orgId)],
      sortKeyName: "gsi1sk",
      indexName: "gsi1",
      newestFirst: true,
      limit: options.limit,
      after: options.after,
      filter: {
        FilterExpression: "#status <> :deleted",
        ExpressionAttributeNames: { "#status": "status" },
        ExpressionAttributeValues: { ":deleted": "DELETED" },
      },
    },
    toBackfill,
  );

export async function updateBackfill(orgId: string, backfillId: string, patch: Partial<CreateBackfillInput>) {
  const current = await getBackfill(orgId, backfillId);
  if (!current) throw notFound("Backfill", backfillId);
  const { id, createdAt, updatedAt: _u, nextRunAt: _n, lastJobId, lastRun, ...fields } = current;
  const merged = parseOrInvalid(createBackfillSchema, { ...fields, ...patch }, { source: "body", what: "backfill" });
  const backfill: Backfill = {
    ...(await validated(orgId, merged)),
    id,
    createdAt,
    updatedAt: new Date().toISOString(),
    ...(lastJobId ? { lastJobId } : {}),
    ...(lastRun ? { lastRun } : {}),
  };
  if (!(await conditionHeld(putBackfill(orgId, backfill, true)))) {
    if (!(await getBackfill(orgId, backfillId))) throw notFound("Backfill", backfillId);
    throw conflict(`Backfill ${backfillId} is starting a run; send the change again`);
  }
  return { ...backfill, nextRunAt: await scheduleNextRun(orgId, backfill) };
}

export async function deleteBackfill(orgId: string, backfillId: string): Promise<void> {
  const deleted = await conditionHeld(
    table.update({
      Key: keys.backfill(orgId, backfillId),
      UpdateExpression: "SET #status = :deleted, deletedAt = :now REMOVE nextRunAt",
      ConditionExpression: "attribute_exists(pk) AND #status <> :deleted",
      ExpressionAttributeNames: { "#status": "status" },
      ExpressionAttributeValues: { ":deleted": "DELETED", ":now": new Date().toISOString() },
    }),
  );
  if (!deleted) throw notFound("Backfill", backfillId);
  await deleteDueMarker(orgId, backfillId);
}

/** Backfills whose next run is due, from the global due index (no scan). */
export async function dueBackfills(now: Date): Promise<{ orgId: string; backfillId: string }[]> {
  const due = await queryAll({
    IndexName: "gsi1",
    KeyConditionExpression: "gsi1pk = :due AND gsi1sk < :now",
    ExpressionAttributeValues: { ":due": keys.dueBackfills, ":now": now.toISOString() },
  });
  // Index entries carry keys only: the due marker's key names the backfill.
  return due.flatMap((entry) => {
    const [, orgId, backfillId] = /^ORG#(.+)#BACKFILL#(.+)$/.exec(String(entry.pk)) ?? [];
    return orgId && backfillId ? [{ orgId, backfillId }] : [];
  });
}
