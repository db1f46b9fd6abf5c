/**
 * What domain code throws when a request cannot be served: a kind the API maps to a status
 * (shared/http/errors.ts), never a status itself, so the store and the pipeline know
 * nothing of HTTP and workers can tell a caller's mistake from a fault.
 */
import type { z } from "zod";

export type DomainErrorKind = "invalid" | "not_found" | "conflict" | "too_large" | "unavailable" | "budget";

export class DomainError extends Error {
  readonly kind: DomainErrorKind;
  /** Machine-readable specifics for the caller (field errors, the id that conflicts). */
  readonly details?: unknown;
  /** For `unavailable`: when trying again makes sense. */
  readonly retryAfterSeconds?: number;

  constructor(kind: DomainErrorKind, message: string, options: { details?: unknown; retryAfterSeconds?: number } = {}) {
    super(message);
    this.name = "DomainError";
    this.kind = kind;
    this.details = options.details;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

export const invalid = (message: string, details?: unknown) => new DomainError("invalid", message, { details });
export const notFound = (what: string, id: string) => new DomainError("not_found", `${what} ${id} not found`);
export const conflict = (message: string, details?: unknown) => new DomainError("conflict", message, { details });
export const tooLarge = (message: string) => new DomainError("too_large", message);
/** The organization's LLM budget leaves no room for the work asked. */
export const budgetExceeded = (message: string, details?: unknown) => new DomainError("budget", message, { details });
export const unavailable = (message: string, retryAfterSeconds: number) =>
  new DomainError("unavailable", message, { retryAfterSeconds });

export const isDomainError = (error: unknown, kind: DomainErrorKind): error is DomainError =>
  error instanceof DomainError && error.kind === kind;

/** The field errors of a failed zod parse, named from `source` ("body", "query"). */
export function fieldErrors(issues: { path: PropertyKey[]; message: string }[], source: string) {
  return issues.map((issue) => ({ field: [source, ...issue.path.map(String)].join("."), message: issue.message }));
}

/**
 * Parses `input` or throws `invalid`, with the first bad field in the message and all of them
 * in the details, named from `source` ("body", "query", "path"). `what` names the entity when
 * the input is a stored one with a patch applied ("Invalid policy: body.name: …").
 */
export function parseOrInvalid<T extends z.ZodType>(
  schema: T,
  input: unknown,
  { source, what }: { source: string; what?: string },
): z.infer<T> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const details = fieldErrors(result.error.issues, source);
  const first = details[0];
  const prefix = what ? `Invalid ${what}: ` : "Invalid ";
  throw invalid(first ? `${prefix}${first.field}: ${first.message}` : `Invalid ${what ?? source}`, details);
}
