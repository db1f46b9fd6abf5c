import { describe, expect, it } from "vitest";
import { conditionMatches, policyMatches } from "../../shared/policies/match.ts";
import type { PolicyCondition } from "../../shared/schemas/policy.ts";
import { conditionSchema, createPolicySchema } from "../../shared/schemas/policy.ts";

const call = { agentId: "agent-support-eu", properties: { region: "EU", tier: "3", campaign: "winter-sale" } };
const prop = (key: string, op: PolicyCondition["conditionOperator"], value: string): PolicyCondition => ({
  conditionType: "CALL_PROPERTY",
  conditionKey: key,
  conditionOperator: op,
  conditionValue: value,
});
const agent = (op: PolicyCondition["conditionOperator"], value: string): PolicyCondition => ({
  conditionType: "AGENT",
  conditionOperator: op,
  conditionValue: value,
});

describe("policy conditions", () => {
  it("evaluates every operator on agents and properties", () => {
    const cases: [PolicyCondition, boolean][] = [
      [agent("EQUALS", "agent-support-eu"), true],
      [agent("EQUALS", "agent-support"), false],
      [agent("NOT_EQUALS", "agent-sales"), true],
      [agent("CONTAINS", "support"), true],
      [agent("STARTS_WITH", "agent-"), true],
      [agent("STARTS_WITH", "support"), false],
      [prop("region", "EQUALS", "EU"), true],
      [prop("region", "NOT_EQUALS", "EU"), false],
      [prop("campaign", "CONTAINS", "sale"), true],
      [prop("tier", "GREATER_THAN", "2"), true],
      [prop("tier", "GREATER_THAN", "3"), false],
      [prop("tier", "GREATER_THAN_OR_EQUALS", "3"), true],
      [prop("tier", "LESS_THAN", "3"), false],
      [prop("tier", "LESS_THAN_OR_EQUALS", "3"), true],
      // Missing or non-numeric values never satisfy a numeric comparison; a missing value is "not equal".
      [prop("missing", "GREATER_THAN", "0"), false],
      [prop("campaign", "LESS_THAN", "10"), false],
      [prop("missing", "EQUALS", ""), false],
      [prop("missing", "NOT_EQUALS", "x"), true],
    ];
    for (const [condition, expected] of cases)
      expect(conditionMatches(condition, call), JSON.stringify(condition)).toBe(expected);
  });

  it("ORs groups of ANDed conditions; no conditions match every call", () => {
    expect(policyMatches([], call)).toBe(true);
    expect(policyMatches([[prop("region", "EQUALS", "EU"), prop("tier", "GREATER_THAN", "5")]], call)).toBe(false);
    expect(
      policyMatches(
        [[prop("region", "EQUALS", "EU"), prop("tier", "GREATER_THAN", "5")], [agent("CONTAINS", "support")]],
        call,
      ),
    ).toBe(true);
    expect(policyMatches([[prop("region", "EQUALS", "EU"), prop("tier", "GREATER_THAN", "2")]], call)).toBe(true);
  });

  it("validates conditions and policies", () => {
    expect(conditionSchema.safeParse({ ...prop("x", "EQUALS", "1"), conditionKey: undefined }).success).toBe(false);
    expect(conditionSchema.safeParse(prop("tier", "GREATER_THAN", "high")).success).toBe(false);
    expect(conditionSchema.safeParse(agent("EQUALS", "a")).success).toBe(true);
    const parsed = createPolicySchema.parse({ name: "All calls", metrics: [{ id: "m" }] });
    expect(parsed).toMatchObject({ status: "ACTIVE", conditions: [] });
    expect(createPolicySchema.safeParse({ name: "x", metrics: [] }).success).toBe(false);
  });
});
