/**
 * A local stand-in for the API Gateway HTTP API: matches requests to the wiring's routes,
 * hands the Lambda handler a payload-format-2.0 event and maps its result back the way API
 * Gateway does. Like the deployed API, a request authorizer (the wiring's `authorizer`)
 * runs before every route that is not `public`, and its context reaches the handler as
 * `requestContext.authorizer.lambda`. Pure pieces (route matching, event building,
 * authorizer events and decisions, result mapping) are exported for unit tests;
 * startHttpGateway wires them to node:http.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type {
  APIGatewayProxyEventV2,
  APIGatewayProxyEventV2WithLambdaAuthorizer,
  APIGatewayRequestAuthorizerEventV2,
} from "aws-lambda";
import type { RouteEntry } from "../../shared/wiring.ts";
import { errorDetails, LOCAL_ACCOUNT_ID, type RuntimeLogger } from "./invoke.ts";

/** API Gateway's payload limit for HTTP APIs. */
export const MAX_PAYLOAD_BYTES = 10 * 1024 * 1024;

const LOCAL_API_ID = "local";

// ---------------------------------------------------------------------------------------
// Route matching

export type RouteMatch =
  | { kind: "route"; route: RouteEntry; pathParameters: Record<string, string> }
  | { kind: "methodNotAllowed"; allowed: string[] }
  | { kind: "notFound" };

type SegmentKind = 0 | 1 | 2; // literal, {param}, {greedy+}: lower is more specific

interface CompiledTemplate {
  segments: { kind: SegmentKind; value: string }[];
}

function compileTemplate(path: string): CompiledTemplate {
  const segments = path
    .split("/")
    .slice(1)
    .map((segment) => {
      const param = /^\{([^{}]+)\}$/.exec(segment)?.[1];
      if (param === undefined) return { kind: 0 as const, value: segment };
      return param.endsWith("+") ? { kind: 2 as const, value: param.slice(0, -1) } : { kind: 1 as const, value: param };
    });
  return { segments };
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment; // API Gateway passes malformed escapes through rather than failing
  }
}

/** The path parameters when `rawPath` fits the template, else undefined. */
function matchTemplate(template: CompiledTemplate, rawSegments: string[]): Record<string, string> | undefined {
  const parameters: Record<string, string> = {};
  for (const [index, segment] of template.segments.entries()) {
    if (segment.kind === 2) {
      const rest = rawSegments.slice(index);
      if (rest.length === 0 || rest.every((part) => part === "")) return undefined;
      parameters[segment.value] = rest.map(decodeSegment).join("/");
      return parameters;
    }
    const part = rawSegments[index];
    if (part === undefined) return undefined;
    if (segment.kind === 0) {
      if (part !== segment.value) return undefined;
    } else {
      if (part === "") return undefined;
      parameters[segment.value] = decodeSegment(part);
    }
  }
  return rawSegments.length === template.segments.length ? parameters : undefined;
}

/** API Gateway prefers the most specific path: literals over {param} over {greedy+}, left to right. */
function compareSpecificity(a: CompiledTemplate, b: CompiledTemplate): number {
  const length = Math.max(a.segments.length, b.segments.length);
  for (let i = 0; i < length; i++) {
    const kindA = a.segments[i]?.kind ?? 3;
    const kindB = b.segments[i]?.kind ?? 3;
    if (kindA !== kindB) return kindA - kindB;
  }
  return 0;
}

export function createRouter(routes: RouteEntry[]) {
  const compiled = routes.map((route) => ({ route, template: compileTemplate(route.path) }));
  return (method: string, rawPath: string): RouteMatch => {
    const rawSegments = rawPath.split("/").slice(1);
    const candidates = compiled
      .map((candidate) => ({ ...candidate, parameters: matchTemplate(candidate.template, rawSegments) }))
      .filter((candidate) => candidate.parameters !== undefined);
    const sameMethod = candidates
      .filter((candidate) => candidate.route.method === method)
      .sort((a, b) => compareSpecificity(a.template, b.template));
    const best = sameMethod[0];
    if (best?.parameters) return { kind: "route", route: best.route, pathParameters: best.parameters };
    if (candidates.length > 0) {
      return { kind: "methodNotAllowed", allowed: [...new Set(candidates.map((candidate) => candidate.route.method))] };
    }
    return { kind: "notFound" };
  };
}

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
const AUTHORIZER_IDENTITY_HEADER = "authorization";

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
class InvalidLambdaResponseError extends Error {
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

function errorResponse(statusCode: number, code: string, message: string): GatewayResponse {
  return {
    statusCode,
    headers: { "content-type": "application/json" },
    cookies: [],
    body: Buffer.from(JSON.stringify({ error: { code, message } })),
  };
}

// ---------------------------------------------------------------------------------------
// Server

export interface HttpGatewayStats {
  requests: number;
  /** Invocations per route id. */
  invocations: Record<string, number>;
  /** Handler failures (throws, timeouts, invalid results) answered with 500. */
  handlerErrors: number;
  /** Authorizer invocations, and requests refused (no key, or the authorizer said no). */
  authorizer: { invocations: number; refused: number; errors: number };
}

export interface HttpGatewayOptions {
  routes: RouteEntry[];
  invoke(route: RouteEntry, event: APIGatewayProxyEventV2): Promise<unknown>;
  /**
   * The request authorizer, run before every non-public route (the wiring's `authorizer`).
   * Without it the handlers see no authorizer context and authenticate the key themselves.
   */
  authorize?(event: APIGatewayRequestAuthorizerEventV2): Promise<unknown>;
  /** For the authorizer's route ARN. Default us-east-1. */
  region?: string;
  /** 0 = a free port. Always bound to 127.0.0.1. */
  port?: number;
  logger: RuntimeLogger;
  maxPayloadBytes?: number;
}

export interface HttpGateway {
  baseUrl: string;
  port: number;
  stats(): HttpGatewayStats;
  stop(): Promise<void>;
}

type BodyResult = { ok: true; body: Buffer } | { ok: false; reason: "too_large" };

/** Reads the body up to the limit; past it keeps draining (so the client sees our 413) but keeps nothing. */
function readBody(request: IncomingMessage, limit: number): Promise<BodyResult> {
  return new Promise((resolveBody, rejectBody) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = Number(request.headers["content-length"] ?? 0) > limit;
    request.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) tooLarge = true;
      if (!tooLarge) chunks.push(chunk);
    });
    request.on("end", () =>
      resolveBody(tooLarge ? { ok: false, reason: "too_large" } : { ok: true, body: Buffer.concat(chunks) }),
    );
    request.on("error", rejectBody);
  });
}

function send(response: ServerResponse, result: GatewayResponse, requestId: string): void {
  if (response.headersSent || response.destroyed) return;
  const headers: Record<string, string | string[]> = { ...result.headers, "apigw-requestid": requestId };
  if (result.cookies.length > 0) headers["set-cookie"] = result.cookies;
  headers["content-length"] = String(result.body.length);
  response.writeHead(result.statusCode, headers);
  response.end(result.body);
}

export async function startHttpGateway(options: HttpGatewayOptions): Promise<HttpGateway> {
  const route = createRouter(options.routes);
  const maxPayloadBytes = options.maxPayloadBytes ?? MAX_PAYLOAD_BYTES;
  const counters: HttpGatewayStats = {
    requests: 0,
    invocations: {},
    handlerErrors: 0,
    authorizer: { invocations: 0, refused: 0, errors: 0 },
  };

  /**
   * The authorizer's verdict as the deployed API applies it: no Authorization header → refused
   * without invoking it; a refusal → 401 in the service's error shape (API Gateway itself
   * answers 403 {"message":"Forbidden"} there, see docs/deploy.md); a failure → 500.
   */
  async function authorize(
    entry: RouteEntry,
    event: APIGatewayProxyEventV2,
  ): Promise<{ event: APIGatewayProxyEventV2 } | { response: GatewayResponse }> {
    if (!options.authorize || entry.public) return { event };
    const refused = () => {
      counters.authorizer.refused++;
      return { response: errorResponse(401, "unauthorized", "Missing or invalid API key") };
    };
    const identity = event.headers[AUTHORIZER_IDENTITY_HEADER];
    if (!identity) return refused();
    counters.authorizer.invocations++;
    let decision: AuthorizerDecision;
    try {
      decision = toAuthorizerDecision(await options.authorize(buildAuthorizerEvent(event, identity, options.region)));
    } catch (error) {
      counters.authorizer.errors++;
      options.logger.error("Authorizer failed", { routeKey: event.routeKey, ...errorDetails(error) });
      return { response: errorResponse(500, "internal_error", "Internal server error") };
    }
    if (!decision.authorized) return refused();
    return { event: withAuthorizerContext(event, decision.context) };
  }
  const inFlight = new Set<Promise<void>>();

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    counters.requests++;
    const requestId = randomUUID();
    const method = (request.method ?? "GET").toUpperCase();
    const url = request.url ?? "/";
    const rawPath = url.split("?")[0] ?? "/";

    const body = await readBody(request, maxPayloadBytes);
    if (!body.ok) {
      const message = `Request payload exceeds the ${maxPayloadBytes} byte limit`;
      return send(response, errorResponse(413, "payload_too_large", message), requestId);
    }
    if (method === "GET" && rawPath === "/health") {
      return send(response, toGatewayResponse({ status: "ok" }), requestId);
    }
    const match = route(method, rawPath);
    if (match.kind === "notFound") {
      return send(response, errorResponse(404, "not_found", `No route for ${method} ${rawPath}`), requestId);
    }
    if (match.kind === "methodNotAllowed") {
      const result = errorResponse(405, "method_not_allowed", `No route for ${method} ${rawPath}`);
      result.headers.allow = match.allowed.join(", ");
      return send(response, result, requestId);
    }

    const routeKey = `${match.route.method} ${match.route.path}`;
    const requestEvent = buildHttpApiEvent(
      {
        method,
        url,
        rawHeaders: request.rawHeaders,
        body: body.body,
        sourceIp: request.socket.remoteAddress?.replace(/^::ffff:/, "") ?? "127.0.0.1",
        protocol: `HTTP/${request.httpVersion}`,
        localPort: request.socket.localPort,
      },
      { routeKey, pathParameters: match.pathParameters, requestId, now: new Date() },
    );
    const authorized = await authorize(match.route, requestEvent);
    if ("response" in authorized) return send(response, authorized.response, requestId);
    const { event } = authorized;
    counters.invocations[match.route.id] = (counters.invocations[match.route.id] ?? 0) + 1;
    let result: GatewayResponse;
    try {
      result = toGatewayResponse(await options.invoke(match.route, event));
    } catch (error) {
      counters.handlerErrors++;
      options.logger.error(`Handler ${match.route.id} failed`, { routeKey, requestId, ...errorDetails(error) });
      result = errorResponse(500, "internal_error", "Internal server error");
    }
    send(response, result, requestId);
  }

  const server = createServer((request, response) => {
    const handling = handle(request, response).catch((error: unknown) => {
      options.logger.error("Local HTTP gateway failed to answer", errorDetails(error));
      if (!response.headersSent) send(response, errorResponse(500, "internal_error", "Internal server error"), "");
      else response.destroy();
    });
    inFlight.add(handling);
    void handling.finally(() => inFlight.delete(handling));
  });

  await new Promise<void>((resolveListen, rejectListen) => {
    server.once("error", rejectListen);
    server.listen(options.port ?? 0, "127.0.0.1", () => {
      server.off("error", rejectListen);
      resolveListen();
    });
  });
  const port = (server.address() as AddressInfo).port;

  return {
    baseUrl: `http://127.0.0.1:${port}`,
    port,
    stats: () => ({ ...counters, invocations: { ...counters.invocations }, authorizer: { ...counters.authorizer } }),
    async stop() {
      const closed = new Promise<void>((resolveClose) => server.close(() => resolveClose()));
      server.closeIdleConnections();
      // Let requests already inside a handler finish (bounded by the handler's timeout).
      await Promise.allSettled([...inFlight]);
      server.closeAllConnections();
      await closed;
    },
  };
}
