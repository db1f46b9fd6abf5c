import { budgetLeft } from "../../shared/budget.ts";
import { apiRoute } from "../../shared/http/api-handler.ts";
import { contract } from "../../shared/http/contract.ts";
import { getOrganization } from "../../shared/store/organizations.ts";
import { monthSpend, spendMonth } from "../../shared/store/spend.ts";

export const handler = apiRoute(contract["GET /v1/organization"], async ({ principal }) => {
  const [organization, costUsd] = await Promise.all([getOrganization(principal.orgId), monthSpend(principal.orgId)]);
  const budget = organization.settings.monthlyBudgetUsd;
  const remainingBudgetUsd = typeof budget === "number" ? budgetLeft(budget, costUsd) : undefined;
  return {
    ...organization,
    spend: { month: spendMonth(), costUsd, ...(remainingBudgetUsd === undefined ? {} : { remainingBudgetUsd }) },
  };
});
