/**
 * The HTTP API's payload format 2.0, as API Gateway speaks it to Lambda: the event a request
 * becomes, the request authorizer's event and decision (simple responses, as the CDK stack
 * configures it), and the HTTP response a handler's result becomes.
 */
import { randomUUID } from "node:crypto";
import type {
  APIGatewayProxyEventV2,
  APIGatewayProxyEventV2WithLambdaAuthorizer,
  APIGatewayRequestAuthorizerEventV2,
} from "aws-lambda";
import { LOCAL_ACCOUNT_ID } from "./invoke.ts";

const LOCAL_API_ID = "local";

// ---------------------------------------------------------------------------------------
// Request → payload 2.0 event

export interface GatewayRequest {
  method: string;
  /** Path and query as received, still URL-encoded. */
  url: string;
  /** Node's rawHeaders: [name, value, name, value, ...]. */
  rawHeaders: string[];
  body: Buffer;
  sourceIp: string;
  /** e.g. HTTP/1.1 */
  protocol: string;
  localPort?: number;
}

export interface EventContext {
  routeKey: string;
  pathParameters: Record<string, string>;
  requestId: string;
  now: Date;
}

const textContentTypes = [
  /^text\//,
  /^application\/(json|xml|javascript|ecmascript|x-www-form-urlencoded|graphql|x-ndjson|yaml|x-yaml)$/,
  /^application\/[^;]+\+(json|xml)$/,
];

/** API Gateway base64-encodes bodies that are not text so binary payloads survive. */
export function isTextContentType(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const mediaType = contentType.split(";")[0]?.trim().toLowerCase() ?? "";
  return textContentTypes.some((pattern) => pattern.test(mediaType));
}

/** CLF-style time as API Gateway writes it: 12/Mar/2020:19:03:58 +0000 */
function formatRequestTime(date: Date): string {
  const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${pad(date.getUTCDate())}/${months[date.getUTCMonth()]}/${date.getUTCFullYear()}:${pad(date.getUTCHours())}:${pad(
    date.getUTCMinutes(),
  )}:${pad(date.getUTCSeconds())} +0000`;
}

function traceId(now: Date): string {
  const epochHex = Math.floor(now.getTime() / 1000).toString(16);
  return `Root=1-${epochHex}-${randomUUID().replaceAll("-", "").slice(0, 24)}`;
}

export function buildHttpApiEvent(request: GatewayRequest, context: EventContext): APIGatewayProxyEventV2 {
  const queryStart = request.url.indexOf("?");
  const rawPath = queryStart === -1 ? request.url : request.url.slice(0, queryStart);
  const rawQueryString = queryStart === -1 ? "" : request.url.slice(queryStart + 1);

  // Repeated headers are comma-joined; cookies move to their own array, as in payload 2.0.
  const headers: Record<string, string> = {};
  const cookies: string[] = [];
  for (let i = 0; i + 1 < request.rawHeaders.length; i += 2) {
    const name = (request.rawHeaders[i] ?? "").toLowerCase();
    const value = request.rawHeaders[i + 1] ?? "";
    if (name === "cookie") {
      cookies.push(
        ...value
          .split(";")
          .map((cookie) => cookie.trim())
          .filter(Boolean),
      );
      continue;
    }
    headers[name] = headers[name] === undefined ? value : `${headers[name]},${value}`;
  }
  headers["x-forwarded-for"] ??= request.sourceIp;
  headers["x-forwarded-proto"] ??= "http";
  if (request.localPort !== undefined) headers["x-forwarded-port"] ??= String(request.localPort);
  headers["x-amzn-trace-id"] ??= traceId(context.now);

  const queryStringParameters: Record<string, string> = {};
  for (const [key, value] of new URLSearchParams(rawQueryString)) {
    const existing = queryStringParameters[key];
    queryStringParameters[key] = existing === undefined ? value : `${existing},${value}`;
  }

  const domainName = headers.host ?? "127.0.0.1";
  const hasBody = request.body.length > 0;
  const isBase64Encoded = hasBody && !isTextContentType(headers["content-type"]);

  return {
    version: "2.0",
    routeKey: context.routeKey,
    rawPath,
    rawQueryString,
    ...(cookies.length > 0 ? { cookies } : {}),
    headers,
    ...(Object.keys(queryStringParameters).length > 0 ? { queryStringParameters } : {}),
    requestContext: {
      accountId: LOCAL_ACCOUNT_ID,
      apiId: LOCAL_API_ID,
      domainName,
      domainPrefix: domainName.split(".")[0] ?? domainName,
      http: {
        method: request.method,
        path: rawPath,
        protocol: request.protocol,
        sourceIp: request.sourceIp,
        userAgent: headers["user-agent"] ?? "",
      },
      requestId: context.requestId,
      routeKey: context.routeKey,
      stage: "$default",
      time: formatRequestTime(context.now),
      timeEpoch: context.now.getTime(),
    },
    ...(Object.keys(context.pathParameters).length > 0 ? { pathParameters: context.pathParameters } : {}),
    ...(hasBody ? { body: request.body.toString(isBase64Encoded ? "base64" : "utf8") } : {}),
    isBase64Encoded,
  };
}

// ---------------------------------------------------------------------------------------
// Request authorizer (payload 2.0, simple responses), as the CDK stack configures it

/** The identity source of the deployed authorizer: `$request.header.Authorization`. */
export const AUTHORIZER_IDENTITY_HEADER = "authorization";

export type AuthorizerDecision = { authorized: true; context: Record<string, unknown> } | { authorized: false };

/** The event API Gateway sends a REQUEST authorizer for this request (payload format 2.0). */
export function buildAuthorizerEvent(
  event: APIGatewayProxyEventV2,
  identity: string,
  region = "us-east-1",
): APIGatewayRequestAuthorizerEventV2 {
  const { body: _body, isBase64Encoded: _isBase64Encoded, cookies, ...request } = event;
  const { stage, http } = event.requestContext;
  return {
    ...request,
    type: "REQUEST",
    routeArn: `arn:aws:execute-api:${region}:${LOCAL_ACCOUNT_ID}:${LOCAL_API_ID}/${stage}/${http.method}${event.rawPath}`,
    identitySource: [identity],
    cookies: cookies ?? [],
  };
}

/**
 * Reads a simple authorizer response. Anything without a boolean `isAuthorized` is a
 * misbehaving authorizer, which API Gateway answers with 500 (so do we: it throws).
 */
export function toAuthorizerDecision(result: unknown): AuthorizerDecision {
  if (
    typeof result !== "object" ||
    result === null ||
    typeof (result as { isAuthorized?: unknown }).isAuthorized !== "boolean"
  ) {
    throw new InvalidLambdaResponseError("The authorizer must answer {isAuthorized: boolean, context?}");
  }
  const { isAuthorized, context } = result as { isAuthorized: boolean; context?: unknown };
  if (!isAuthorized) return { authorized: false };
  if (context !== undefined && (typeof context !== "object" || context === null || Array.isArray(context))) {
    throw new InvalidLambdaResponseError("The authorizer's context must be an object");
  }
  return { authorized: true, context: (context as Record<string, unknown> | undefined) ?? {} };
}

/** The handler's event with the authorizer's context where API Gateway puts it. */
export function withAuthorizerContext(
  event: APIGatewayProxyEventV2,
  context: Record<string, unknown>,
): APIGatewayProxyEventV2WithLambdaAuthorizer<Record<string, unknown>> {
  return { ...event, requestContext: { ...event.requestContext, authorizer: { lambda: context } } };
}

// ---------------------------------------------------------------------------------------
// Handler result → HTTP response

export interface GatewayResponse {
  statusCode: number;
  headers: Record<string, string>;
  cookies: string[];
  body: Buffer;
}

/** A result API Gateway could not turn into a response; it answers 500 then. */
export class InvalidLambdaResponseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InvalidLambdaResponseError";
  }
}

/**
 * Payload 2.0 response mapping: an object with statusCode is used as is; anything else is
 * inferred as 200 application/json with the result (a string verbatim) as the body.
 */
export function toGatewayResponse(result: unknown): GatewayResponse {
  if (typeof result === "object" && result !== null && !Array.isArray(result) && "statusCode" in result) {
    return structuredResponse(result as Record<string, unknown>);
  }
  const body = typeof result === "string" ? result : (JSON.stringify(result) ?? "");
  return { statusCode: 200, headers: { "content-type": "application/json" }, cookies: [], body: Buffer.from(body) };
}

/** A result with statusCode, checked as API Gateway checks it. */
function structuredResponse(structured: Record<string, unknown>): GatewayResponse {
  const { statusCode, body, isBase64Encoded, cookies } = structured;
  if (typeof statusCode !== "number" || !Number.isInteger(statusCode) || statusCode < 100 || statusCode > 599) {
    throw new InvalidLambdaResponseError(`Invalid statusCode: ${JSON.stringify(statusCode)}`);
  }
  if (body !== undefined && body !== null && typeof body !== "string") {
    throw new InvalidLambdaResponseError("body must be a string");
  }
  if (cookies !== undefined && (!Array.isArray(cookies) || cookies.some((cookie) => typeof cookie !== "string"))) {
    throw new InvalidLambdaResponseError("cookies must be an array of strings");
  }
  const text = typeof body === "string" ? body : "";
  return {
    statusCode,
    headers: lowerCaseHeaders(structured.headers),
    cookies: (cookies as string[] | undefined) ?? [],
    body: Buffer.from(text, isBase64Encoded === true ? "base64" : "utf8"),
  };
}

function lowerCaseHeaders(rawHeaders: unknown): Record<string, string> {
  const headers: Record<string, string> = {};
  if (rawHeaders === undefined || rawHeaders === null) return headers;
  if (typeof rawHeaders !== "object") throw new InvalidLambdaResponseError("headers must be an object");
  for (const [name, value] of Object.entries(rawHeaders)) {
    if (value === undefined || value === null) continue;
    headers[name.toLowerCase()] = String(value);
  }
  return headers;
}

export function errorResponse(statusCode: number, code: string, message: string): GatewayResponse {
  return {
    statusCode,
    headers: { "content-type": "application/json" },
    cookies: [],
    body: Buffer.from(JSON.stringify({ error: { code, message } })),
  };
}
