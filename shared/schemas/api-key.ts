import { z } from "zod";
import { roles } from "./role.ts";

export const createApiKeySchema = z.strictObject({
  name: z.string().trim().min(1).max(100),
  role: z.enum(roles),
});
export type CreateApiKeyInput = z.infer<typeof createApiKeySchema>;
