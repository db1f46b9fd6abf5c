import { z } from "zod";

/** A person's verdict on a value: the value it should have been (checked against the definition's type), and why. */
export const reviewSchema = z.strictObject({
  reviewedValue: z.union([z.number(), z.string(), z.boolean(), z.array(z.string()).max(50)]),
  note: z.string().trim().max(1000).optional(),
});
export type ReviewInput = z.infer<typeof reviewSchema>;

const accuracy = z.number().min(0).max(1).nullable();

/** How often the judge's values match reviewed ones, for one version or all. */
const agreementFigures = {
  /** Reviewed values. */
  reviewed: z.number().int(),
  /** Of those, values the judge gave (SUCCESS): the ones compared. */
  compared: z.number().int(),
  /** Of those, the judge's value equals the reviewed one. */
  agreed: z.number().int(),
  accuracy,
  /** NUMERIC, SCALE and COUNT: the mean of |judged − reviewed|. */
  meanAbsoluteError: z.number().nullable().optional(),
};

export const agreementSchema = z.object({
  metricDefinitionId: z.string(),
  slug: z.string(),
  outputType: z.string(),
  ...agreementFigures,
  byVersion: z.array(z.object({ version: z.number().int(), ...agreementFigures })),
});
export type Agreement = z.infer<typeof agreementSchema>;
