/**
 * The service's one table, named here only: store code reads and writes through these
 * calls, which take DynamoDB's command inputs without `TableName`, and treats a condition
 * that did not hold as a value (`conditionHeld`, `ifConditionHeld`, `failedConditions`)
 * instead of catching SDK exceptions by hand.
 */
import { ConditionalCheckFailedException, TransactionCanceledException } from "@aws-sdk/client-dynamodb";
import {
  DeleteCommand,
  type DeleteCommandInput,
  GetCommand,
  type GetCommandInput,
  PutCommand,
  type PutCommandInput,
  QueryCommand,
  type QueryCommandInput,
  type QueryCommandOutput,
  TransactWriteCommand,
  type TransactWriteCommandInput,
  UpdateCommand,
  type UpdateCommandInput,
} from "@aws-sdk/lib-dynamodb";
import { unmarshall } from "@aws-sdk/util-dynamodb";
import { dynamo } from "../aws.ts";
import { sleep } from "../concurrency.ts";
import { config } from "../config.ts";

type Item = Record<string, unknown>;
type WithoutTable<T> = Omit<T, "TableName">;
type TransactItem = NonNullable<TransactWriteCommandInput["TransactItems"]>[number];

/** A transaction's item on this table: one of Put, Update, Delete or ConditionCheck, without `TableName`. */
export type TableTransactItem = {
  [Action in keyof TransactItem]?: WithoutTable<NonNullable<TransactItem[Action]>>;
};

/** The table's name, for the batch calls that key their requests by it. */
export const tableName = () => config().tableName;

export const table = {
  async get(key: Item, options: Omit<WithoutTable<GetCommandInput>, "Key"> = {}): Promise<Item | undefined> {
    const { Item } = await dynamo().send(new GetCommand({ ...options, TableName: tableName(), Key: key }));
    return Item;
  },

  async put(input: WithoutTable<PutCommandInput>): Promise<void> {
    await dynamo().send(new PutCommand({ ...input, TableName: tableName() }));
  },

  /** Answers the item's attributes as `ReturnValues` asks (none unless asked). */
  async update(input: WithoutTable<UpdateCommandInput>): Promise<Item | undefined> {
    const { Attributes } = await dynamo().send(new UpdateCommand({ ...input, TableName: tableName() }));
    return Attributes;
  },

  async delete(input: WithoutTable<DeleteCommandInput>): Promise<void> {
    await dynamo().send(new DeleteCommand({ ...input, TableName: tableName() }));
  },

  query(input: WithoutTable<QueryCommandInput>): Promise<QueryCommandOutput> {
    return dynamo().send(new QueryCommand({ ...input, TableName: tableName() }));
  },

  /** All of `items` or none of them (DynamoDB's transaction, at most 100 items). */
  async transactWrite(items: TableTransactItem[]): Promise<void> {
    const TableName = tableName();
    const TransactItems = items.map((item) =>
      Object.fromEntries(Object.entries(item).map(([action, input]) => [action, { ...input, TableName }])),
    ) as TransactItem[];
    await dynamo().send(new TransactWriteCommand({ TransactItems }));
  },
};

/** Runs a conditional write: true when it applied, false when its condition did not hold. */
export async function conditionHeld(write: Promise<unknown>): Promise<boolean> {
  try {
    await write;
    return true;
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) return false;
    throw error;
  }
}

/** Runs a conditional write: what it answers, or undefined when its condition did not hold. */
export async function ifConditionHeld<T>(write: Promise<T>): Promise<T | undefined> {
  try {
    return await write;
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) return undefined;
    throw error;
  }
}

/**
 * Runs a conditional write that asks for the item as its condition found it
 * (`ReturnValuesOnConditionCheckFailure: "ALL_OLD"`): what it answers, or the item found (none
 * when it does not exist), saving the read a refused write would otherwise need.
 */
export async function orItemFound<T>(
  write: Promise<T>,
): Promise<{ held: true; value: T } | { held: false; found?: Item }> {
  try {
    return { held: true, value: await write };
  } catch (error) {
    if (!(error instanceof ConditionalCheckFailedException)) throw error;
    // The document client leaves the exception's item in DynamoDB's attribute-value form.
    return { held: false, found: error.Item ? unmarshall(error.Item) : undefined };
  }
}

/**
 * The wait before writing again after a transaction was canceled by a concurrent one on the
 * same items (TransactionConflict, which the SDK does not retry): exponential, jittered.
 */
export const backOffAfterConflict = (attempt: number) =>
  sleep(Math.min(1000, 20 * 2 ** attempt) * (0.5 + Math.random()));

/**
 * For a transaction canceled because conditions did not hold: per item, in order, whether
 * its condition failed. Undefined for any other error (the caller rethrows it).
 */
export function failedConditions(error: unknown): boolean[] | undefined {
  if (!(error instanceof TransactionCanceledException)) return undefined;
  return (error.CancellationReasons ?? []).map((reason) => reason.Code === "ConditionalCheckFailed");
}

/**
 * Deletes `items` (by pk and sk) exactly once, each conditioned on existing, in one
 * transaction with what `alongside` adds for those still pending (the rollup delta that
 * subtracts them, say). Items a concurrent deletion removed are left out, since it did their
 * part; a conflict backs off. Answers how many this call deleted.
 */
export async function deleteOnce(
  items: Item[],
  alongside: (pending: Item[]) => TableTransactItem[],
  maxAttempts = 6,
): Promise<number> {
  let pending = items;
  for (let attempt = 1; pending.length > 0; attempt++) {
    if (attempt > maxAttempts) throw new Error(`${pending.length} deletions kept conflicting`);
    try {
      await table.transactWrite([
        ...pending.map((item) => ({
          Delete: { Key: { pk: item.pk, sk: item.sk }, ConditionExpression: "attribute_exists(pk)" },
        })),
        // After the deletions: a cancellation reports conditions by position.
        ...alongside(pending),
      ]);
      return pending.length;
    } catch (error) {
      const failedAt = failedConditions(error);
      if (!failedAt) throw error;
      if (!failedAt.some(Boolean)) await backOffAfterConflict(attempt);
      pending = pending.filter((_, position) => !failedAt[position]);
    }
  }
  return 0;
}
