/**
 * A local stand-in for the API Gateway HTTP API: matches requests to the wiring's routes,
 * hands the Lambda handler a payload-format-2.0 event and maps its result back the way API
 * Gateway does. Like the deployed API, a request authorizer (the wiring's `authorizer`)
 * runs before every route that is not `public`, and its context reaches the handler as
 * `requestContext.authorizer.lambda`. Route matching (gateway-routes.ts) and the payload
 * format (gateway-payloads.ts) are pure and tested on their own; this file wires them to
 * node:http.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { APIGatewayProxyEventV2, APIGatewayRequestAuthorizerEventV2 } from "aws-lambda";
import type { RouteEntry } from "../../shared/wiring.ts";
import {
  AUTHORIZER_IDENTITY_HEADER,
  type AuthorizerDecision,
  buildAuthorizerEvent,
  buildHttpApiEvent,
  errorResponse,
  type GatewayResponse,
  toAuthorizerDecision,
  toGatewayResponse,
  withAuthorizerContext,
} from "./gateway-payloads.ts";
import { createRouter } from "./gateway-routes.ts";
import { errorDetails, type RuntimeLogger } from "./invoke.ts";

/** API Gateway's payload limit for HTTP APIs. */
export const MAX_PAYLOAD_BYTES = 10 * 1024 * 1024;

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
