/**
 * An organization may restrict the models its LLM-judged metrics use (settings.allowedModels):
 * definitions naming another model are refused when saved, and jobs and playground runs
 * whose definitions would use one are refused before anything runs. Jobs created before
 * the restriction, and by policies and backfills saved before it, record such items ERROR
 * without calling the model (the evaluator checks too).
 */
import { config } from "./config.ts";
import { invalid } from "./errors.ts";
import type { MetricDefinition } from "./schemas/metric.ts";
import { organizationSettings } from "./store/organizations.ts";

type Judged = Pick<MetricDefinition, "calculationType" | "model"> & Partial<Pick<MetricDefinition, "slug">>;

/** The model an LLM-judged definition runs on; none for the others. */
export const modelOf = (definition: Judged): string | undefined =>
  definition.calculationType === "LLM_JUDGE" ? (definition.model ?? config().judgeModel) : undefined;

/** The model `definition` would call, when `allowedModels` (the organization's setting) refuses it. */
export function refusedModel(definition: Judged, allowedModels: string[] | undefined): string | undefined {
  const model = modelOf(definition);
  return model !== undefined && allowedModels !== undefined && !allowedModels.includes(model) ? model : undefined;
}

export async function assertModelsAllowed(orgId: string, definitions: Judged[]): Promise<void> {
  const { allowedModels } = await organizationSettings(orgId);
  if (!allowedModels) return;
  const refused = definitions.filter((definition) => refusedModel(definition, allowedModels) !== undefined);
  if (refused.length === 0) return;
  const models = [...new Set(refused.map(modelOf))].join(", ");
  throw invalid(`This organization allows only the models ${allowedModels.join(", ")}; not ${models}`, {
    allowedModels,
    refused: refused.map((definition) => ({ slug: definition.slug, model: modelOf(definition) })),
  });
}
