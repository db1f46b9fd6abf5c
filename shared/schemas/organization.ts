import { z } from "zod";

/**
 * What an organization's admins set for it (PUT /v1/organization/settings): a partial body,
 * merged into the current settings; `null` clears a setting.
 */
export const organizationSettingsSchema = z.strictObject({
  allowedModels: z
    .array(z.string().trim().min(1).max(100))
    .min(1)
    .max(50)
    .nullable()
    .optional()
    .describe(
      "The only models LLM-judged definitions, jobs and playground runs may use (a definition without a model uses the service's default judge model, which must then be listed); absent or null: any model",
    ),
});
export type OrganizationSettings = z.infer<typeof organizationSettingsSchema>;
