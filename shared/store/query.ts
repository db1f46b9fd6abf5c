/** Paged queries with exact `hasMore` and cursors bound to the partition being read. */
import { QueryCommand, type QueryCommandInput } from "@aws-sdk/lib-dynamodb";
import { dynamo } from "../aws.ts";
import { config } from "../config.ts";
import { decodeCursor, encodeCursor, type Page } from "../http/pagination.ts";

type Item = Record<string, unknown>;

export interface PagedQuery {
  /** Partition to read: [attribute name, value]. */
  partition: [name: string, value: string];
  sortKeyName: string;
  indexName?: string;
  sortKeyPrefix?: string;
  newestFirst?: boolean;
  filter?: Pick<QueryCommandInput, "FilterExpression" | "ExpressionAttributeNames" | "ExpressionAttributeValues">;
  limit: number;
  after?: string;
}

/** Reads up to `limit` matching items, looping past filtered-out items, and one beyond to know if more exist. */
export async function queryPage<T>(query: PagedQuery, toApi: (item: Item) => T): Promise<Page<T>> {
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
  let startKey: Item | undefined = decodeCursor(query.after, { [partitionName]: partitionValue });
  do {
    const result = await dynamo().send(
      new QueryCommand({
        TableName: config().tableName,
        IndexName: query.indexName,
        KeyConditionExpression: keyCondition,
        FilterExpression: query.filter?.FilterExpression,
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
        ScanIndexForward: !query.newestFirst,
        ExclusiveStartKey: startKey,
        Limit: query.limit + 1 - items.length,
      }),
    );
    items.push(...((result.Items ?? []) as Item[]));
    startKey = result.LastEvaluatedKey as Item | undefined;
  } while (startKey && items.length <= query.limit);

  const hasMore = items.length > query.limit;
  const pageItems = items.slice(0, query.limit);
  const last = pageItems.at(-1);
  const nextKey = hasMore && last ? Object.fromEntries(keyNames.map((name) => [name, last[name]])) : undefined;
  return {
    data: pageItems.map(toApi),
    pagination: { hasMore, nextCursor: encodeCursor(nextKey) },
  };
}

export type QueryAllInput = Omit<QueryCommandInput, "TableName" | "ExclusiveStartKey">;

/** Every item a query matches on the service's table, page after page (1 MB each). */
export async function* queryItems(input: QueryAllInput): AsyncGenerator<Item> {
  let startKey: Item | undefined;
  do {
    const page = await dynamo().send(
      new QueryCommand({ ...input, TableName: config().tableName, ExclusiveStartKey: startKey }),
    );
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
