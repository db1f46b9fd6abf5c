/**
 * The table helper on DynamoDB Local: calls never name the table, and a condition that does
 * not hold comes back as a value — per write, and per item of a canceled transaction.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DomainError } from "../../shared/errors.ts";
import { conditionHeld, failedConditions, ifConditionHeld, table } from "../../shared/store/table.ts";
import { startTestStack, type TestStack } from "../support/stack.ts";

describe("the table helper", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(() => stack?.stop());

  const key = (name: string) => ({ pk: `TEST#${name}`, sk: "ITEM" });

  it("reports whether a conditional put applied instead of throwing", async () => {
    const create = () => table.put({ Item: { ...key("a"), n: 1 }, ConditionExpression: "attribute_not_exists(pk)" });
    expect(await conditionHeld(create())).toBe(true);
    expect(await conditionHeld(create())).toBe(false);
    expect(await table.get(key("a"), { ConsistentRead: true })).toEqual({ ...key("a"), n: 1 });
  });

  it("answers an update's new attributes, or undefined when its condition failed", async () => {
    await table.put({ Item: { ...key("b"), n: 1 } });
    const bump = (expected: number) =>
      table.update({
        Key: key("b"),
        UpdateExpression: "SET n = n + :one",
        ConditionExpression: "n = :expected",
        ExpressionAttributeValues: { ":one": 1, ":expected": expected },
        ReturnValues: "ALL_NEW",
      });
    expect(await ifConditionHeld(bump(1))).toEqual({ ...key("b"), n: 2 });
    expect(await ifConditionHeld(bump(1))).toBeUndefined();
  });

  it("names which items of a canceled transaction failed their condition", async () => {
    await table.put({ Item: { ...key("c"), n: 1 } });
    const error = await table
      .transactWrite([
        { Put: { Item: key("new"), ConditionExpression: "attribute_not_exists(pk)" } },
        { Put: { Item: key("c"), ConditionExpression: "attribute_not_exists(pk)" } },
      ])
      .catch((caught: unknown) => caught);
    expect(failedConditions(error)).toEqual([false, true]);
    expect(await table.get(key("new"), { ConsistentRead: true })).toBeUndefined();
    expect(failedConditions(new Error("throttled"))).toBeUndefined();
  });

  it("rethrows what is not a failed condition", async () => {
    const unstorable = table.put({ Item: { ...key("d"), text: "x".repeat(420_000) } });
    await expect(conditionHeld(unstorable)).rejects.not.toBeInstanceOf(DomainError);
  });
});
