/**
 * The OpenAPI 3.1 document, generated from the API contract (the zod schemas that validate
 * requests and describe responses). Served at
 * GET /openapi.json and written to the repo by `npm run openapi`.
 */
import { z } from "zod";
import * as responses from "../schemas/responses.ts";
import { roles } from "../schemas/role.ts";
import { contract, type RouteContract } from "./contract.ts";

type JsonSchema = Record<string, unknown>;

const COMPONENT_PREFIX = "#/components/schemas/";

/** Named components: shared entities become $refs instead of being repeated in every operation. */
function componentRegistry() {
  const registry = z.registry<{ id?: string }>();
  const named: [z.ZodType, string][] = [
    [responses.errorBodySchema, "Error"],
    [responses.paginationSchema, "Pagination"],
    [responses.tokenUsageSchema, "TokenUsage"],
    [responses.callSummarySchema, "CallSummary"],
    [responses.callSchema, "Call"],
    [responses.metricDefinitionSchema, "MetricDefinition"],
    [responses.frozenMetricSchema, "FrozenMetric"],
    [responses.webhookDeliverySchema, "WebhookDelivery"],
    [responses.collectionJobSchema, "CollectionJob"],
    [responses.segmentRefSchema, "SegmentRef"],
    [responses.metricValueSchema, "MetricValue"],
    [responses.jobMetricValuesSchema, "JobMetricValues"],
    [responses.playgroundResultSchema, "PlaygroundResult"],
    [responses.metricPolicySchema, "MetricPolicy"],
    [responses.backfillRunSchema, "BackfillRun"],
    [responses.backfillSchema, "Backfill"],
    [responses.webhookSecretSchema, "WebhookSecret"],
    [responses.timeseriesResultSchema, "TimeseriesResult"],
  ];
  for (const [schema, id] of named) registry.add(schema, { id });
  return registry;
}

/** zod bounds every int by ±MAX_SAFE_INTEGER; that is noise in a document. */
function dropSafeIntegerBounds(node: unknown): void {
  if (Array.isArray(node)) for (const child of node) dropSafeIntegerBounds(child);
  if (typeof node !== "object" || node === null) return;
  const record = node as Record<string, unknown>;
  if (record.minimum === Number.MIN_SAFE_INTEGER) delete record.minimum;
  if (record.maximum === Number.MAX_SAFE_INTEGER) delete record.maximum;
  for (const child of Object.values(record)) dropSafeIntegerBounds(child);
}

function toJsonSchema(schema: z.ZodType, registry: ReturnType<typeof componentRegistry>, components: JsonSchema) {
  const generated = z.toJSONSchema(schema, {
    io: "input",
    metadata: registry,
    unrepresentable: "any",
    cycles: "ref",
    reused: "inline",
  });
  // Named schemas come out as $defs; in the document they are components.
  const converted = JSON.parse(JSON.stringify(generated).replaceAll('"#/$defs/', `"${COMPONENT_PREFIX}`)) as JsonSchema;
  dropSafeIntegerBounds(converted);
  const { $schema: _schema, $defs, ...rest } = converted;
  for (const [id, definition] of Object.entries(($defs ?? {}) as Record<string, JsonSchema>)) {
    const { $id: _id, $schema: _s, ...clean } = definition;
    components[id] = clean;
  }
  if (typeof rest.$id === "string") {
    // The schema itself is a named component: refer to it.
    const id = rest.$id.slice(COMPONENT_PREFIX.length);
    const { $id: _id, ...clean } = rest;
    components[id] = clean;
    return { $ref: `${COMPONENT_PREFIX}${id}` };
  }
  return rest;
}

function parameters(
  schema: z.ZodType | undefined,
  location: "query" | "path",
  registry: ReturnType<typeof componentRegistry>,
  components: JsonSchema,
) {
  if (!schema) return [];
  const object = toJsonSchema(schema, registry, components) as {
    properties?: Record<string, JsonSchema>;
    required?: string[];
  };
  return Object.entries(object.properties ?? {}).map(([name, property]) => ({
    name,
    in: location,
    required: location === "path" || (object.required ?? []).includes(name),
    ...(typeof property.description === "string" ? { description: property.description } : {}),
    schema: property,
  }));
}

/** The header of the routes that create something (shared/http/idempotency.ts). */
const idempotencyKeyParameter = {
  name: "Idempotency-Key",
  in: "header",
  required: false,
  description:
    "Makes a retry safe: the same key with the same request answers the first response (Idempotent-Replayed: true) and creates nothing more; with another request, 409 idempotency_key_reused. Keys belong to the organization and are kept 24 hours; a request that fails frees its key.",
  schema: { type: "string", minLength: 1, maxLength: 255 },
};

const errorResponses = (route: RouteContract) => {
  const error = { content: { "application/json": { schema: { $ref: `${COMPONENT_PREFIX}Error` } } } };
  if (route.public) return {};
  return {
    "400": { description: "Invalid input (per-field details)", ...error },
    "401": { description: "Missing or invalid API key", ...error },
    ...(route.roles.length < roles.length
      ? { "403": { description: `Needs a key with the role ${route.roles.join(" or ")}`, ...error } }
      : route.adminOnlyWhen
        ? { "403": { description: `Admin keys only when the organization sets ${route.adminOnlyWhen}`, ...error } }
        : {}),
    "404": { description: "Not found (or another organization's)", ...error },
    "409": { description: "Conflict", ...error },
    "429": { description: "Rate-limited; honour Retry-After", ...error },
    "500": { description: "Internal error", ...error },
  };
};

export interface OpenApiOptions {
  /** Server URL to advertise; default "/" (same origin). */
  serverUrl?: string;
}

export function buildOpenApi(options: OpenApiOptions = {}) {
  const registry = componentRegistry();
  const components: JsonSchema = {};
  const paths: Record<string, Record<string, unknown>> = {};
  for (const [routeKey, entry] of Object.entries(contract) as [string, RouteContract][]) {
    const [method = "GET", path = "/"] = routeKey.split(" ");
    const status = String(entry.successStatus ?? 200);
    const operation = {
      operationId: entry.operationId,
      summary: entry.summary,
      ...(entry.description ? { description: entry.description } : {}),
      ...(entry.public ? {} : { "x-roles": entry.roles }),
      tags: [entry.tag],
      ...(entry.public ? { security: [] } : {}),
      parameters: [
        ...parameters(entry.path, "path", registry, components),
        ...parameters(entry.query, "query", registry, components),
        ...(entry.idempotent ? [idempotencyKeyParameter] : []),
      ],
      ...(entry.body
        ? {
            requestBody: {
              required: true,
              content: { "application/json": { schema: toJsonSchema(entry.body, registry, components) } },
            },
          }
        : {}),
      responses: {
        [status]: {
          description: entry.summary,
          content: { "application/json": { schema: toJsonSchema(entry.response, registry, components) } },
        },
        ...errorResponses(entry),
      },
    };
    paths[path] ??= {};
    (paths[path] as Record<string, unknown>)[method.toLowerCase()] = operation;
  }
  toJsonSchema(responses.errorBodySchema, registry, components);
  const sorted = Object.fromEntries(Object.entries(components).sort(([a], [b]) => a.localeCompare(b)));
  return {
    openapi: "3.1.0",
    info: {
      title: "Metric collection service",
      version: "1.0.0",
      description:
        "Runs LLM-judged and built-in metrics over AI agent calls. Success bodies are `{data}`; lists add `pagination {hasMore, nextCursor}` (pass nextCursor back as `after`); errors are `{error: {code, message, details?}}`.",
    },
    servers: [{ url: options.serverUrl ?? "/" }],
    security: [{ apiKey: [] }],
    tags: [
      ...new Set(
        Object.values(paths).flatMap((ops) => Object.values(ops).map((op) => (op as { tags: string[] }).tags[0])),
      ),
    ].map((name) => ({ name })),
    paths,
    components: {
      securitySchemes: { apiKey: { type: "http", scheme: "bearer", description: "An API key: `Bearer <key>`" } },
      schemas: sorted,
    },
  };
}

export type OpenApiDocument = ReturnType<typeof buildOpenApi>;
