/** Errors that map to an HTTP status and the `{error: {code, message, details}}` body. */
import type { DomainError, DomainErrorKind } from "../errors.ts";

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details?: unknown;
  readonly headers?: Record<string, string>;

  constructor(
    status: number,
    code: string,
    message: string,
    options: { details?: unknown; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = options.details;
    this.headers = options.headers;
  }
}

export const badRequest = (message: string, details?: unknown) =>
  new ApiError(400, "validation_error", message, { details });
export const unauthorized = (message = "Missing or invalid API key") => new ApiError(401, "unauthorized", message);
export const forbidden = (message: string) => new ApiError(403, "forbidden", message);
export const payloadTooLarge = (message: string) => new ApiError(413, "payload_too_large", message);

const statusOfKind: Record<DomainErrorKind, { status: number; code: string }> = {
  invalid: { status: 400, code: "validation_error" },
  not_found: { status: 404, code: "not_found" },
  conflict: { status: 409, code: "conflict" },
  too_large: { status: 413, code: "payload_too_large" },
  unavailable: { status: 503, code: "unavailable" },
  budget: { status: 402, code: "budget_exceeded" },
};

/** The answer to a domain error: its kind decides the status, its retry hint the header. */
export function apiErrorOf(error: DomainError): ApiError {
  const { status, code } = statusOfKind[error.kind];
  const headers =
    error.retryAfterSeconds === undefined ? undefined : { "retry-after": String(error.retryAfterSeconds) };
  return new ApiError(status, code, error.message, { details: error.details, headers });
}
