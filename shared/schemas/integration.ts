/**
 * Integrations: a voice platform (Vapi, Retell, ElevenLabs) posting its end-of-call webhooks
 * to the service, each to a URL of its own, signed with a secret the organization shares with
 * that platform. The secret is write-only: never answered, never logged.
 */
import { z } from "zod";

export const integrationProviders = ["vapi", "retell", "elevenlabs"] as const;
export type IntegrationProvider = (typeof integrationProviders)[number];

/** How long a rotated secret still verifies deliveries, by default and at most. */
export const DEFAULT_SECRET_GRACE_SECONDS = 3600;
export const MAX_SECRET_GRACE_SECONDS = 7 * 86_400;

const headerName = z
  .string()
  .regex(/^[A-Za-z0-9-]{1,64}$/, "a header name: letters, digits and '-'")
  .transform((name) => name.toLowerCase());

/** Vapi signs with the credential set on the server URL: a bearer token, or an HMAC of `{timestamp}.{body}`. */
const vapiAuthSchema = z.strictObject({
  type: z.enum(["bearer", "hmac"]).default("bearer"),
  signatureHeader: headerName.default("x-signature").describe("HMAC only: the header carrying the hex signature"),
  timestampHeader: headerName.default("x-timestamp").describe("HMAC only: the header carrying the timestamp"),
});

const secretSchema = z
  .string()
  .min(8, "at least 8 characters")
  .max(1024)
  .describe(
    "Retell: the API key that signs its webhooks; ElevenLabs: the webhook's HMAC secret; Vapi: the bearer token or HMAC secret of the server URL. Never returned.",
  );

const agentMappingSchema = z
  .record(z.string().min(1).max(256), z.string().min(1).max(256))
  .refine((mapping) => Object.keys(mapping).length <= 100, "at most 100 agents")
  .describe("The platform's agent (assistant) id → the agentId its calls get here; unmapped agents keep theirs");

const integrationPropertiesSchema = z
  .record(z.string().min(1).max(128), z.string().max(1024))
  .refine((properties) => Object.keys(properties).length <= 20, "at most 20 properties")
  .describe("Properties every call of this integration gets (the call's own win on a clash)");

const vapiOnly = (body: { provider?: IntegrationProvider; vapiAuth?: unknown }, context: z.RefinementCtx) => {
  if (body.vapiAuth !== undefined && body.provider !== undefined && body.provider !== "vapi") {
    context.addIssue({ code: "custom", path: ["vapiAuth"], message: "only Vapi integrations take vapiAuth" });
  }
};

export const createIntegrationSchema = z
  .strictObject({
    provider: z.enum(integrationProviders),
    name: z.string().trim().min(1).max(100),
    secret: secretSchema,
    vapiAuth: vapiAuthSchema.optional(),
    agentMapping: agentMappingSchema.optional(),
    properties: integrationPropertiesSchema.optional(),
  })
  .superRefine(vapiOnly);
export type CreateIntegrationInput = z.infer<typeof createIntegrationSchema>;

export const updateIntegrationSchema = z
  .strictObject({
    name: z.string().trim().min(1).max(100).optional(),
    secret: secretSchema.optional().describe("A new secret; the old one still verifies for secretGraceSeconds"),
    secretGraceSeconds: z
      .number()
      .int()
      .min(0)
      .max(MAX_SECRET_GRACE_SECONDS)
      .optional()
      .describe(`How long the replaced secret still verifies (default ${DEFAULT_SECRET_GRACE_SECONDS})`),
    vapiAuth: vapiAuthSchema.optional(),
    agentMapping: agentMappingSchema.optional(),
    properties: integrationPropertiesSchema.optional(),
  })
  .refine((body) => body.secretGraceSeconds === undefined || body.secret !== undefined, {
    path: ["secretGraceSeconds"],
    message: "only with a new secret",
  })
  .refine((body) => Object.keys(body).length > 0, { message: "send at least one field to change" });
export type UpdateIntegrationInput = z.infer<typeof updateIntegrationSchema>;

/** An integration as the API answers it: never its secret. */
export const integrationSchema = z.object({
  id: z.string(),
  provider: z.enum(integrationProviders),
  name: z.string(),
  webhookUrl: z.string().describe("The path the platform posts to, under this API's base URL"),
  vapiAuth: vapiAuthSchema.optional(),
  agentMapping: z.record(z.string(), z.string()).optional(),
  properties: z.record(z.string(), z.string()).optional(),
  secretRotatedAt: z.string().optional(),
  receivedCount: z.number().int().optional().describe("Deliveries that stored (or updated) a call"),
  lastReceivedAt: z.string().optional(),
  failedCount: z.number().int().optional().describe("Deliveries refused: bad signature, bad payload, our faults"),
  lastFailedAt: z.string().optional(),
  lastError: z.string().optional().describe("Why the last refused delivery was refused"),
  previousSecretValidUntil: z.string().optional().describe("Until then the replaced secret still verifies"),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type Integration = z.infer<typeof integrationSchema>;
