/**
 * Opaque cursors over DynamoDB's LastEvaluatedKey. The query schema decodes `after` into a
 * key; the store checks the key against the partition it is about to read, so a forged
 * cursor cannot reach another organization's data or turn into a 500.
 */
import { z } from "zod";
import type { KeyPage, PageKey } from "../store/query.ts";

export function encodeCursor(key: Record<string, unknown> | undefined): string | null {
  return key ? Buffer.from(JSON.stringify(key)).toString("base64url") : null;
}

const keySchema = z.record(z.string(), z.string());

/** The key a cursor encodes, or undefined when it is not one of ours. */
export function decodeCursor(cursor: string): PageKey | undefined {
  try {
    const result = keySchema.safeParse(JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")));
    return result.success ? result.data : undefined;
  } catch {
    return undefined;
  }
}

const cursorSchema = z
  .string()
  .min(1)
  .max(2048)
  .transform((cursor, context): PageKey => {
    const key = decodeCursor(cursor);
    if (!key) context.addIssue({ code: "custom", message: "not a cursor this API returned" });
    return key ?? {};
  });

export const pageQuerySchema = (maxLimit: number, defaultLimit: number) =>
  z.object({
    limit: z.coerce.number().int().min(1).max(maxLimit).default(defaultLimit),
    after: cursorSchema.optional(),
  });

export interface Page<T> {
  data: T[];
  pagination: { hasMore: boolean; nextCursor: string | null };
}

/** A list answer: the page's items and the cursor that continues after them. */
export function page<T>({ items, nextKey }: KeyPage<T>): Page<T> {
  const nextCursor = encodeCursor(nextKey);
  return { data: items, pagination: { hasMore: nextCursor !== null, nextCursor } };
}
