/**
 * The one wrapper every API Lambda uses: authentication, JSON parsing, zod validation of
 * body/query/path, and error mapping. Handlers stay a few lines of domain calls.
 */
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import { ZodError, type z } from "zod";
import { authenticate, isRole, type Principal, type Role } from "../auth.ts";
import { DomainError, fieldErrors, parseOrInvalid } from "../errors.ts";
import { logger, withLambdaContext } from "../logger.ts";
import type { AuditAction } from "../schemas/audit.ts";
import { envelopeOf } from "../schemas/responses.ts";
import { recordAuditEvent } from "../store/audit.ts";
import { organizationSettings } from "../store/organizations.ts";
import type { KeyPage } from "../store/query.ts";
import { annotate } from "../tracer.ts";
import { enforceApiRateLimit } from "./api-rate-limit.ts";
import { ApiError, apiErrorOf, badRequest, forbidden, payloadTooLarge, unauthorized } from "./errors.ts";
import { idempotencyKeyOf, respondIdempotently } from "./idempotency.ts";
import { page } from "./pagination.ts";

/** Lambda's synchronous payload limit; API Gateway would otherwise fail with a bare 413. */
const MAX_BODY_BYTES = 6 * 1024 * 1024 - 64 * 1024;

export interface ApiRequest<B, Q, P> {
  principal: Principal;
  body: B;
  query: Q;
  path: P;
  event: APIGatewayProxyEventV2;
}

export interface ApiRouteOptions<B extends z.ZodType, Q extends z.ZodType, P extends z.ZodType> {
  body?: B;
  query?: Q;
  path?: P;
  /** The roles of the keys this route serves; every route needs a valid key. */
  roles: readonly Role[];
  /** An organization setting that, when true, narrows the route to admin keys. */
  adminOnlyWhen?: "analyticsAdminOnly";
  /** Status of a successful answer. */
  successStatus?: number;
  /** The success body; built with `dataOf` / `pageOf`, it says how the handler's result is wrapped. */
  response?: z.ZodType;
  /** A change the audit trail records, with the key that made it. */
  audit?: AuditAction;
  /** Creates something: honours Idempotency-Key (shared/http/idempotency.ts). */
  idempotent?: boolean;
  operationId?: string;
}

type Infer<T> = T extends z.ZodType ? z.infer<T> : undefined;

export function json(statusCode: number, payload: unknown, headers: Record<string, string> = {}) {
  return {
    statusCode,
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(payload),
  } satisfies APIGatewayProxyStructuredResultV2;
}

function parse<T extends z.ZodType>(schema: T | undefined, input: unknown, source: string): Infer<T> {
  return (schema ? parseOrInvalid(schema, input, { source }) : undefined) as Infer<T>;
}

/**
 * In AWS the request authorizer has already resolved the key (its context is on the
 * event); locally, and if it is ever missing, the handler authenticates the key itself.
 */
function authorizerPrincipal(event: APIGatewayProxyEventV2): Principal | undefined {
  const context = (event.requestContext as { authorizer?: { lambda?: Record<string, unknown> } }).authorizer?.lambda;
  const { orgId, role, keyId } = context ?? {};
  if (typeof orgId !== "string" || !isRole(role) || typeof keyId !== "string") return undefined;
  return { orgId, role, keyId };
}

/** The body as the client sent it (API Gateway's base64 decoded): 400 without one, 413 beyond the limit. */
export function rawBodyOf(event: APIGatewayProxyEventV2): string {
  if (!event.body) throw badRequest("Request body is required");
  const raw = event.isBase64Encoded ? Buffer.from(event.body, "base64").toString("utf8") : event.body;
  if (Buffer.byteLength(raw) > MAX_BODY_BYTES) {
    throw payloadTooLarge(`Request body exceeds ${MAX_BODY_BYTES} bytes; split the request`);
  }
  return raw;
}

function readJsonBody(event: APIGatewayProxyEventV2): unknown {
  const raw = rawBodyOf(event);
  try {
    return JSON.parse(raw);
  } catch {
    throw badRequest("Request body is not valid JSON");
  }
}

/**
 * Records a change in the audit trail. The change is made: a failed record is logged as an
 * error, not answered as one (a retry would make the change again).
 */
async function recordChange(
  action: AuditAction,
  principal: Principal,
  result: unknown,
  path: unknown,
  event: APIGatewayProxyEventV2,
) {
  const resultId = (result as { id?: unknown } | undefined)?.id;
  const pathId = Object.values((path ?? {}) as Record<string, unknown>)[0];
  const resourceId = typeof resultId === "string" ? resultId : typeof pathId === "string" ? pathId : undefined;
  try {
    await recordAuditEvent(principal.orgId, {
      action,
      keyId: principal.keyId,
      role: principal.role,
      ...(resourceId ? { resourceId } : {}),
      ...(event.requestContext?.requestId ? { requestId: event.requestContext.requestId } : {}),
    });
  } catch (error) {
    logger.error("Audit event not recorded", { action, resourceId, error: error as Error });
  }
}

/** 403 when the organization narrowed the route to admin keys with the setting `setting`. */
async function refuseUnlessAllowed(principal: Principal, setting: "analyticsAdminOnly") {
  const settings = await organizationSettings(principal.orgId);
  if (settings[setting] === true) {
    throw forbidden(
      `This organization serves these routes to admin keys only (setting ${setting}); this key is ${principal.role}`,
    );
  }
}

export function apiRoute<
  B extends z.ZodType = z.ZodUndefined,
  Q extends z.ZodType = z.ZodUndefined,
  P extends z.ZodType = z.ZodUndefined,
>(options: ApiRouteOptions<B, Q, P>, handle: (request: ApiRequest<Infer<B>, Infer<Q>, Infer<P>>) => Promise<unknown>) {
  const envelope = envelopeOf(options.response);
  const wrap = (result: unknown) =>
    envelope === "page" ? page(result as KeyPage<unknown>) : envelope === "data" ? { data: result } : result;
  const core = async (event: APIGatewayProxyEventV2, context: Context) => {
    const principal = authorizerPrincipal(event) ?? (await authenticate(event.headers?.authorization));
    if (!principal) throw unauthorized();
    if (!options.roles.includes(principal.role)) {
      throw forbidden(
        `This route needs a key with the role ${options.roles.join(" or ")}; this key is ${principal.role}`,
      );
    }
    await enforceApiRateLimit(principal.orgId);
    if (options.adminOnlyWhen && principal.role !== "admin")
      await refuseUnlessAllowed(principal, options.adminOnlyWhen);
    const body = parse(options.body, options.body ? readJsonBody(event) : undefined, "body");
    const query = parse(options.query, event.queryStringParameters ?? {}, "query");
    const path = parse(options.path, event.pathParameters ?? {}, "path");
    // One request per invocation: the organization goes on every later line, the error's too.
    logger.appendKeys({ orgId: principal.orgId });
    annotate({ orgId: principal.orgId });
    const respond = async () => {
      const result = await handle({ principal, body, query, path, event });
      if (options.audit) await recordChange(options.audit, principal, result, path, event);
      return json(options.successStatus ?? 200, wrap(result));
    };
    const idempotencyKey = options.idempotent ? idempotencyKeyOf(event) : undefined;
    if (idempotencyKey === undefined) return respond();
    const operationId = options.operationId ?? "";
    return respondIdempotently(
      { orgId: principal.orgId, key: idempotencyKey, operationId, path, body, context },
      respond,
    );
  };
  return withLambdaContext<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>(core)
    .before((request) => {
      // API Gateway's request id, as in its access log: the line that joins the two.
      logger.setCorrelationId(request.event.requestContext?.requestId);
    })
    .onError((request) => {
      request.response = errorResponseOf(request.error, request.event.routeKey);
    });
}

/** The answer to a failed request: the error's status and shape, or a logged 500 for a fault of ours. */
export function errorResponseOf(thrown: unknown, routeKey: string | undefined): APIGatewayProxyStructuredResultV2 {
  const error = thrown instanceof DomainError ? apiErrorOf(thrown) : thrown;
  if (error instanceof ApiError) {
    return json(
      error.status,
      { error: { code: error.code, message: error.message, details: error.details } },
      error.headers,
    );
  }
  if (error instanceof ZodError) {
    return json(400, {
      error: { code: "validation_error", message: "Invalid input", details: fieldErrors(error.issues, "input") },
    });
  }
  logger.error("Unhandled error", { error: error as Error, routeKey });
  return json(500, { error: { code: "internal_error", message: "Internal server error" } });
}
