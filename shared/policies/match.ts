/** Which calls a metric policy applies to: OR of AND-groups of conditions; none = every call. */
import type { Call } from "../schemas/call.ts";
import type { PolicyCondition } from "../schemas/policy.ts";

type CallLabels = Pick<Call, "agentId" | "properties">;

function compare(actual: string | undefined, condition: PolicyCondition): boolean {
  const expected = condition.conditionValue;
  switch (condition.conditionOperator) {
    case "EQUALS":
      return actual === expected;
    case "NOT_EQUALS":
      return actual !== expected;
    case "CONTAINS":
      return actual?.includes(expected) === true;
    case "STARTS_WITH":
      return actual?.startsWith(expected) === true;
    default: {
      // Numeric comparisons: a missing or non-numeric value never matches.
      const left = Number(actual);
      const right = Number(expected);
      if (actual === undefined || actual.trim() === "" || !Number.isFinite(left)) return false;
      if (condition.conditionOperator === "GREATER_THAN") return left > right;
      if (condition.conditionOperator === "LESS_THAN") return left < right;
      if (condition.conditionOperator === "GREATER_THAN_OR_EQUALS") return left >= right;
      return left <= right;
    }
  }
}

export function conditionMatches(condition: PolicyCondition, call: CallLabels): boolean {
  const actual = condition.conditionType === "AGENT" ? call.agentId : call.properties?.[condition.conditionKey ?? ""];
  return compare(actual, condition);
}

export function policyMatches(conditions: PolicyCondition[][], call: CallLabels): boolean {
  if (conditions.length === 0) return true;
  return conditions.some((group) => group.every((condition) => conditionMatches(condition, call)));
}
