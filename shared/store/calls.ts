/**
 * Calls. The transcript (with tool invocations) is gzip-compressed and stored as binary
 * chunks beside the call item, so an hour-long call never meets DynamoDB's 400 KB item
 * limit; all of a call is written in one transaction and read back with one query.
 */

import { randomUUID } from "node:crypto";
import { gunzipSync, gzipSync } from "node:zlib";
import { conflict, tooLarge } from "../errors.ts";
import { keys } from "../keys.ts";
import type { Call, CreateCallInput } from "../schemas/call.ts";
import { INLINE_CALL_RETENTION_SECONDS } from "../schemas/job.ts";
import { CALL_ENTITY } from "../stream-entities.ts";
import { batchGet } from "./batch-get.ts";
import { assertCursorOf, baseItems, type KeyPage, type PageKey, queryAll, queryPage } from "./query.ts";
import { retentionExpiresAt } from "./retention.ts";
import { failedConditions, type TableTransactItem, table } from "./table.ts";

const CHUNK_BYTES = 300 * 1024;
/** A transaction carries at most 4 MB; leave room for the call item itself. */
export const MAX_COMPRESSED_TRANSCRIPT_BYTES = 3_500_000;

/** What a call's transcript and tool invocations weigh as stored (gzip-compressed). */
export const compressedTranscriptBytes = ({
  transcript,
  toolInvocations,
}: Pick<CreateCallInput, "transcript" | "toolInvocations">) =>
  gzipSync(JSON.stringify({ transcript, toolInvocations })).byteLength;

export type CallSummary = Omit<Call, "transcript" | "toolInvocations"> & { segmentCount: number };
type Item = Record<string, unknown>;

const summaryFields = [
  "id",
  "externalId",
  "agentId",
  "environmentId",
  "callDirection",
  "interfaceType",
  "startedAt",
  "endedAt",
  "durationMs",
  "properties",
  "segmentCount",
  "createdAt",
] as const;

function toSummary(item: Item): CallSummary {
  return Object.fromEntries(summaryFields.filter((f) => item[f] !== undefined).map((f) => [f, item[f]])) as CallSummary;
}

/**
 * The items that store one call: the call item and its transcript chunks (an externalId
 * adds its lookup item in `createCall`). Exported for bulk loading (the benchmark), which
 * must store calls exactly as the API does.
 */
export function callItems(
  orgId: string,
  input: CreateCallInput,
  expiresAt?: number,
  inline = false,
): { callItem: Item; chunkItems: Item[] } {
  const id = randomUUID();
  const createdAt = new Date().toISOString();
  const { transcript, toolInvocations, ...fields } = input;
  const blob = gzipSync(JSON.stringify({ transcript, toolInvocations }));
  if (blob.byteLength > MAX_COMPRESSED_TRANSCRIPT_BYTES) {
    throw tooLarge("Transcript is too large to store (compressed size over 3.5 MB)");
  }
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < blob.byteLength; offset += CHUNK_BYTES) {
    chunks.push(blob.subarray(offset, offset + CHUNK_BYTES));
  }
  const callItem = {
    ...keys.call(orgId, id),
    // An inline call is in no list and no stream filter (policies never match it).
    ...(inline
      ? { entity: INLINE_CALL_ENTITY }
      : { entity: CALL_ENTITY, gsi1pk: keys.callList(orgId), gsi1sk: keys.listSortKey(createdAt, id) }),
    ...fields,
    id,
    orgId,
    segmentCount: transcript.length,
    // For cost estimates without reading transcripts (shared/pipeline/estimate-job.ts).
    transcriptChars: transcript.reduce((sum, segment) => sum + segment.text.length, 0),
    transcriptChunks: chunks.length,
    createdAt,
    ...(expiresAt === undefined ? {} : { expiresAt }),
  };
  const chunkItems = chunks.map((data, index) => ({
    pk: callItem.pk,
    sk: keys.transcriptChunkSk(index),
    entity: "TranscriptChunk",
    data,
    ...(expiresAt === undefined ? {} : { expiresAt }),
  }));
  return { callItem, chunkItems };
}

const INLINE_CALL_ENTITY = "InlineCall";

/** Stores a call sent with a job: kept for the job only (a TTL), unlisted, its externalId not looked up. */
export async function createInlineCall(orgId: string, input: CreateCallInput): Promise<string> {
  const kept = Math.floor(Date.now() / 1000) + INLINE_CALL_RETENTION_SECONDS;
  const retained = await retentionExpiresAt(orgId);
  const { callItem, chunkItems } = callItems(orgId, input, Math.min(kept, retained ?? kept), true);
  await table.transactWrite([
    { Put: { Item: callItem, ConditionExpression: "attribute_not_exists(pk)" } },
    ...chunkItems.map((Item) => ({ Put: { Item } })),
  ]);
  return String(callItem.id);
}

export async function createCall(orgId: string, input: CreateCallInput): Promise<CallSummary> {
  const expiresAt = await retentionExpiresAt(orgId);
  const { callItem, chunkItems } = callItems(orgId, input, expiresAt);
  const puts: TableTransactItem[] = [
    { Put: { Item: callItem, ConditionExpression: "attribute_not_exists(pk)" } },
    ...chunkItems.map((Item) => ({ Put: { Item } })),
  ];
  if (input.externalId) {
    puts.unshift({
      Put: {
        Item: {
          ...keys.callExternalId(orgId, input.externalId),
          entity: "CallExternalId",
          callId: callItem.id,
          ...(expiresAt === undefined ? {} : { expiresAt }),
        },
        ConditionExpression: "attribute_not_exists(pk)",
      },
    });
  }
  try {
    await table.transactWrite(puts);
  } catch (error) {
    if (input.externalId && failedConditions(error)?.[0]) {
      const existing = await table.get(keys.callExternalId(orgId, input.externalId));
      throw conflict(`A call with externalId '${input.externalId}' already exists`, { callId: existing?.callId });
    }
    throw error;
  }
  return toSummary(callItem);
}

/** Reads a call with its transcript: one query over the call's partition. */
export async function getCall(orgId: string, callId: string): Promise<Call | undefined> {
  const items = await queryAll({
    KeyConditionExpression: "pk = :pk",
    ExpressionAttributeValues: { ":pk": keys.callPartition(orgId, callId) },
  });
  const callItem = items.find((item) => item.sk === "CALL");
  if (!callItem) return undefined;
  // Past its retention: TTL deletes its items one by one, within a day or two; it is gone now.
  if (typeof callItem.expiresAt === "number" && callItem.expiresAt * 1000 <= Date.now()) return undefined;
  const chunks = items
    .filter((item) => String(item.sk).startsWith("TRANSCRIPT#"))
    .map((item) => Buffer.from(item.data as Uint8Array));
  if (chunks.length !== callItem.transcriptChunks) {
    throw new Error(`Call ${callId} has ${chunks.length} of ${String(callItem.transcriptChunks)} transcript chunks`);
  }
  const { transcript, toolInvocations } = JSON.parse(gunzipSync(Buffer.concat(chunks)).toString("utf8"));
  const { segmentCount: _segments, ...summary } = toSummary(callItem);
  return { ...summary, transcript, ...(toolInvocations ? { toolInvocations } : {}) } as Call;
}

/** A stored call without its transcript, as lists answer it. */
export async function getCallSummary(orgId: string, callId: string): Promise<CallSummary | undefined> {
  const item = await table.get(keys.call(orgId, callId));
  return item?.entity === CALL_ENTITY ? toSummary(item) : undefined;
}

/** The id of the organization's call stored with `externalId`, if there is one. */
export async function callIdByExternalId(orgId: string, externalId: string): Promise<string | undefined> {
  const item = await table.get(keys.callExternalId(orgId, externalId));
  return typeof item?.callId === "string" ? item.callId : undefined;
}

/** The call stored with `externalId` as a list page: itself, or nothing. */
export async function listCallsByExternalId(orgId: string, externalId: string): Promise<KeyPage<CallSummary>> {
  const callId = await callIdByExternalId(orgId, externalId);
  const item = callId ? await table.get(keys.call(orgId, callId)) : undefined;
  return { items: item ? [toSummary(item)] : [] };
}

export interface CallFilter {
  agentId?: string;
  /** ISO 8601: calls that started at or after this instant. */
  startedAfter?: string;
  /** ISO 8601: calls that started before this instant. */
  startedBefore?: string;
  /** Properties that must all be equal. */
  properties?: Record<string, string>;
}

/** Calls looked at per request at most: a filtered page may come back short, with a cursor to go on. */
export const MAX_CALLS_EXAMINED = 2000;

function matchesFilter(call: Item, filter: CallFilter): boolean {
  const started = Date.parse(String(call.startedAt));
  const properties = (call.properties ?? {}) as Record<string, unknown>;
  return (
    (!filter.agentId || call.agentId === filter.agentId) &&
    (!filter.startedAfter || started >= Date.parse(filter.startedAfter)) &&
    (!filter.startedBefore || started < Date.parse(filter.startedBefore)) &&
    Object.entries(filter.properties ?? {}).every(([name, value]) => properties[name] === value)
  );
}

/**
 * The organization's calls that match `filter`, newest first. The filter runs on the calls
 * themselves (the index holds keys only), over at most MAX_CALLS_EXAMINED calls per request;
 * the cursor goes on after the last call returned, or the last one looked at.
 */
export async function listMatchingCalls(
  orgId: string,
  filter: CallFilter,
  limit: number,
  after?: PageKey,
  maxExamined = MAX_CALLS_EXAMINED,
): Promise<KeyPage<CallSummary>> {
  const partition = keys.callList(orgId);
  assertCursorOf(after, "gsi1pk", partition);
  const keyOf = (item: Item) => ({ gsi1pk: item.gsi1pk, gsi1sk: item.gsi1sk, pk: item.pk, sk: item.sk });
  const matches: Item[] = [];
  let lastExamined: Item | undefined;
  let examined = 0;
  let startKey: Item | undefined = after;
  do {
    const page = await table.query({
      IndexName: "gsi1",
      KeyConditionExpression: "gsi1pk = :list",
      ExpressionAttributeValues: { ":list": partition },
      ScanIndexForward: false,
      ExclusiveStartKey: startKey,
      Limit: Math.min(100, maxExamined),
    });
    const calls = await baseItems((page.Items ?? []) as Item[], [...summaryFields, "gsi1pk", "gsi1sk"]);
    for (const call of calls) {
      examined++;
      lastExamined = call;
      if (matchesFilter(call, filter)) matches.push(call);
      if (matches.length > limit) break;
    }
    startKey = page.LastEvaluatedKey as Item | undefined;
  } while (startKey && matches.length <= limit && examined < maxExamined);
  const items = matches.slice(0, limit);
  const last = matches.length > limit ? items.at(-1) : startKey ? lastExamined : undefined;
  return { items: items.map(toSummary), ...(last ? { nextKey: keyOf(last) } : {}) };
}

export const listCalls = (orgId: string, limit: number, after?: PageKey) =>
  queryPage(
    {
      partition: ["gsi1pk", keys.callList(orgId)],
      sortKeyName: "gsi1sk",
      indexName: "gsi1",
      newestFirst: true,
      limit,
      after,
    },
    toSummary,
  );

/** Ids among `callIds` that are not calls of this organization. */
export async function findMissingCalls(orgId: string, callIds: string[]): Promise<string[]> {
  const found = await batchGet(
    callIds.map((id) => keys.call(orgId, id)),
    { projection: ["id"] },
  );
  const existing = new Set(found.map((item) => item.id));
  return callIds.filter((id) => !existing.has(id));
}

export async function callExists(orgId: string, callId: string): Promise<boolean> {
  return (await table.get(keys.call(orgId, callId), { ProjectionExpression: "pk" })) !== undefined;
}

/**
 * Changes a stored call's properties (a platform's later analysis of it) with `merge`.
 * Policies matched the call when it was stored and are not matched again.
 */
export async function updateCallProperties(
  orgId: string,
  callId: string,
  merge: (current: Record<string, string>) => Record<string, string>,
): Promise<void> {
  const item = await table.get(keys.call(orgId, callId));
  if (!item) return;
  await table.update({
    Key: keys.call(orgId, callId),
    UpdateExpression: "SET properties = :properties",
    ConditionExpression: "attribute_exists(pk)",
    ExpressionAttributeValues: { ":properties": merge((item.properties ?? {}) as Record<string, string>) },
  });
}
