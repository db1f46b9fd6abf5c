/** Paged queries with an exact "more after this" and start keys bound to the partition being read. */
import type { QueryCommandInput } from "@aws-sdk/lib-dynamodb";
import { invalid } from "../errors.ts";
import { batchGet } from "./batch-get.ts";
import { table } from "./table.ts";

type Item = Record<string, unknown>;
/** Where a page starts: the key of the last item of the page before. */
export type PageKey = Record<string, string>;

export interface KeyPage<T> {
  items: T[];
  /** Set when more items follow: pass it as `after` to read them. */
  nextKey?: Record<string, unknown>;
}

export interface PagedQuery {
  /** Partition to read: [attribute name, value]. */
  partition: [name: string, value: string];
  sortKeyName: string;
  indexName?: string;
  sortKeyPrefix?: string;
  newestFirst?: boolean;
  filter?: Pick<QueryCommandInput, "FilterExpression" | "ExpressionAttributeNames" | "ExpressionAttributeValues">;
  limit: number;
  after?: PageKey;
}

/** A cursor must come from the list being read: one from another partition is refused (400). */
export function assertCursorOf(after: PageKey | undefined, partitionName: string, partitionValue: string): void {
  if (after && after[partitionName] !== partitionValue) {
    throw invalid("Invalid cursor in 'after'", [{ field: "query.after", message: "not a cursor of this list" }]);
  }
}

/** Reads up to `limit` matching items, looping past filtered-out items, and one beyond to know if more exist. */
export async function queryPage<T>(query: PagedQuery, toApi: (item: Item) => T): Promise<KeyPage<T>> {
  const [partitionName, partitionValue] = query.partition;
  const keyNames = query.indexName ? [partitionName, query.sortKeyName, "pk", "sk"] : ["pk", "sk"];
  const names: Record<string, string> = { "#p": partitionName, ...query.filter?.ExpressionAttributeNames };
  const values: Record<string, unknown> = { ":p": partitionValue, ...query.filter?.ExpressionAttributeValues };
  let keyCondition = "#p = :p";
  if (query.sortKeyPrefix) {
    names["#s"] = query.sortKeyName;
    values[":s"] = query.sortKeyPrefix;
    keyCondition += " AND begins_with(#s, :s)";
  }
  const items: Item[] = [];
  assertCursorOf(query.after, partitionName, partitionValue);
  let startKey: Item | undefined = query.after;
  do {
    const result = await table.query({
      IndexName: query.indexName,
      KeyConditionExpression: keyCondition,
      FilterExpression: query.filter?.FilterExpression,
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
      ScanIndexForward: !query.newestFirst,
      ExclusiveStartKey: startKey,
      Limit: query.limit + 1 - items.length,
    });
    items.push(...((result.Items ?? []) as Item[]));
    startKey = result.LastEvaluatedKey as Item | undefined;
  } while (startKey && items.length <= query.limit);

  const hasMore = items.length > query.limit;
  const pageItems = items.slice(0, query.limit);
  const last = pageItems.at(-1);
  const nextKey = hasMore && last ? Object.fromEntries(keyNames.map((name) => [name, last[name]])) : undefined;
  return { items: (query.indexName ? await baseItems(pageItems) : pageItems).map(toApi), nextKey };
}

/**
 * The table's items behind index entries, in the entries' order. The index projects keys and
 * a few attributes only (shared/table.ts); an item deleted since the index was read is left out.
 */
export async function baseItems(entries: Item[], projection?: string[]): Promise<Item[]> {
  if (entries.length === 0) return [];
  const keyOf = (item: Item) => `${String(item.pk)}\n${String(item.sk)}`;
  const found = await batchGet(
    entries.map((entry) => ({ pk: String(entry.pk), sk: String(entry.sk) })),
    projection ? { projection: [...new Set(["pk", "sk", ...projection])] } : {},
  );
  const byKey = new Map<string, Item>(found.map((item) => [keyOf(item), item]));
  return entries.flatMap((entry): Item[] => {
    const item = byKey.get(keyOf(entry));
    return item ? [item] : [];
  });
}

export type QueryAllInput = Omit<QueryCommandInput, "TableName" | "ExclusiveStartKey">;

/** Every item a query matches on the service's table, page after page (1 MB each). */
export async function* queryItems(input: QueryAllInput): AsyncGenerator<Item> {
  let startKey: Item | undefined;
  do {
    const page = await table.query({ ...input, ExclusiveStartKey: startKey });
    yield* (page.Items ?? []) as Item[];
    startKey = page.LastEvaluatedKey as Item | undefined;
  } while (startKey);
}

/** Every item a query matches, collected. */
export async function queryAll(input: QueryAllInput): Promise<Item[]> {
  const items: Item[] = [];
  for await (const item of queryItems(input)) items.push(item);
  return items;
}
