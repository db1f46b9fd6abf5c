/**
 * An organization's monthly LLM budget (settings.monthlyBudgetUsd), against what it has spent
 * this month (shared/store/spend.ts): a job created through the API that would exceed what
 * is left is refused (402) before anything is enqueued, every job's cost cap is at most what
 * is left, and a playground run is refused once nothing is left.
 */
import { budgetExceeded } from "./errors.ts";
import { organizationSettings } from "./store/organizations.ts";
import { monthSpend, spendMonth } from "./store/spend.ts";

/** What a budget leaves after `spentUsd`, to the millionth of a dollar. */
export const budgetLeft = (budgetUsd: number, spentUsd: number) =>
  Math.max(0, Math.round((budgetUsd - spentUsd) * 1_000_000) / 1_000_000);

/** What is left of this month's budget in USD; undefined without a budget. */
export async function remainingBudgetUsd(orgId: string): Promise<number | undefined> {
  const { monthlyBudgetUsd } = await organizationSettings(orgId);
  if (typeof monthlyBudgetUsd !== "number") return undefined;
  return budgetLeft(monthlyBudgetUsd, await monthSpend(orgId));
}

/**
 * Refuses work expected to cost at least `expectedUsd` when less is left (or nothing, for 0).
 * `remaining` is what the caller read already (`remainingBudgetUsd`), when it did.
 */
export async function assertWithinBudget(
  orgId: string,
  expectedUsd: number,
  what: string,
  remaining?: number,
): Promise<void> {
  if (remaining === undefined) remaining = await remainingBudgetUsd(orgId);
  if (remaining === undefined) return;
  if (remaining > 0 && expectedUsd <= remaining) return;
  const { monthlyBudgetUsd } = await organizationSettings(orgId);
  throw budgetExceeded(
    `${what} would exceed this organization's monthly LLM budget of $${monthlyBudgetUsd} for ${spendMonth()}: $${remaining} is left${expectedUsd > 0 ? `, and it is expected to cost at least $${expectedUsd}` : ""}`,
    { monthlyBudgetUsd, remainingUsd: remaining, expectedUsd },
  );
}
