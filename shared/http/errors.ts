/** Errors that map to an HTTP status and the `{error: {code, message, details}}` body. */
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
export const notFound = (what: string, id: string) => new ApiError(404, "not_found", `${what} ${id} not found`);
export const conflict = (message: string, details?: unknown) => new ApiError(409, "conflict", message, { details });
export const payloadTooLarge = (message: string) => new ApiError(413, "payload_too_large", message);
