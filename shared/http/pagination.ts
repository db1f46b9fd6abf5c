/**
 * Opaque cursors over DynamoDB's LastEvaluatedKey. A cursor is checked against the
 * partition the query is about to read, so a forged cursor cannot reach another
 * organization's data or turn into a 500.
 */
import { z } from "zod";
import { badRequest } from "./errors.ts";

type Key = Record<string, string>;

export function encodeCursor(key: Record<string, unknown> | undefined): string | null {
  return key ? Buffer.from(JSON.stringify(key)).toString("base64url") : null;
}

const keySchema = z.record(z.string(), z.string());

export function decodeCursor(cursor: string | undefined, expected: Key): Key | undefined {
  if (!cursor) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    throw badRequest("Invalid cursor in 'after'");
  }
  const result = keySchema.safeParse(parsed);
  const belongs = result.success && Object.entries(expected).every(([name, value]) => result.data[name] === value);
  if (!result.success || !belongs) throw badRequest("Invalid cursor in 'after'");
  return result.data;
}

export const pageQuerySchema = (maxLimit: number, defaultLimit: number) =>
  z.object({
    limit: z.coerce.number().int().min(1).max(maxLimit).default(defaultLimit),
    after: z.string().min(1).max(2048).optional(),
  });

export interface Page<T> {
  data: T[];
  pagination: { hasMore: boolean; nextCursor: string | null };
}

export function page<T>(data: T[], lastKey: Record<string, unknown> | undefined): Page<T> {
  const nextCursor = encodeCursor(lastKey);
  return { data, pagination: { hasMore: nextCursor !== null, nextCursor } };
}
